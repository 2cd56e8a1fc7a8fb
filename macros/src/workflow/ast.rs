//! The syntax of `workflow!`, parsed but not yet understood: the shared front end
//! ([`crate::dsl`]) with plain steps as the chains' members.

use syn::Path;
use syn::parse::{Parse, ParseStream};

use crate::dsl::chain::{self, Members, Statement};
use crate::dsl::header::{Dsl, Header};

/// `#[attrs] vis Name(Input) -> Output { statements }`
pub(crate) struct WorkflowInput {
    pub(crate) header: Header,
    pub(crate) statements: Vec<Statement<Path>>,
    /// Syntax errors inside statements; the statements that parsed are still in `statements`.
    pub(crate) errors: Vec<syn::Error>,
}

/// The words of `workflow!`.
pub(crate) const WORKFLOW: Dsl = Dsl {
    kind: "workflow",
    invocation: "workflow! { pub Etl { extract -> load } }",
    body: "Etl { extract -> load }",
    chain: "extract -> load;",
    group: "[clean, audit]",
    after_step: "expected `->` to chain the next step, or `;` to end the statement",
    extra_step_options: &[],
};

/// A workflow's chain members are plain steps.
const STEPS: Members<Path> = Members {
    after_path: |path, _| Ok(path),
};

impl Parse for WorkflowInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let (header, body) = Header::parse(input, &WORKFLOW)?;
        let (statements, errors) =
            chain::statements(body, |input| chain::statement(input, &WORKFLOW, &STEPS));
        Ok(WorkflowInput {
            header,
            statements,
            errors,
        })
    }
}
