//! Build-time diagnostics of the macros: every `fail` case must fail with exactly the recorded
//! `.stderr`, and every `pass` case must build and run.

#[test]
fn workflow_diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/workflow/fail/*.rs");
    t.pass("tests/ui/workflow/pass/*.rs");
}

#[test]
fn saga_diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/saga/fail/*.rs");
    t.pass("tests/ui/saga/pass/*.rs");
}

#[test]
fn fsm_diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fsm/fail/*.rs");
    t.pass("tests/ui/fsm/pass/*.rs");
}
