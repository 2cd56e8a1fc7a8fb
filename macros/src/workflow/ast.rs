//! The syntax of `workflow!`, parsed but not yet understood: the shared front end
//! ([`crate::dsl`]) with plain steps as the chains' members.

use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, Path, Type, Visibility, token};

use crate::dsl::chain::{self, Members, Statement};
use crate::dsl::header::{Dsl, Header};
use crate::dsl::options::STEP_OPTIONS;

/// `#[attrs] vis Name(Input) -> Output { statements }`
pub(crate) struct WorkflowInput {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) input: Option<Type>,
    pub(crate) output: Option<Type>,
    pub(crate) brace: token::Brace,
    pub(crate) statements: Vec<Statement<Path>>,
    /// Syntax errors inside statements; the statements that parsed are still in `statements`.
    pub(crate) errors: Vec<syn::Error>,
}

impl WorkflowInput {
    /// The input of `header` with the statements read from its body.
    pub(crate) fn new(
        header: Header,
        statements: Vec<Statement<Path>>,
        errors: Vec<syn::Error>,
    ) -> Self {
        WorkflowInput {
            attrs: header.attrs,
            vis: header.vis,
            name: header.name,
            input: header.input,
            output: header.output,
            brace: header.brace,
            statements,
            errors,
        }
    }
}

/// The words of `workflow!`.
pub(crate) const WORKFLOW: Dsl = Dsl {
    kind: "workflow",
    invocation: "workflow! { pub Etl { extract -> load } }",
    body: "Etl { extract -> load }",
    chain: "extract -> load;",
    group: "[clean, audit]",
    after_step: "expected `->` to chain the next step, or `;` to end the statement",
    step_options: STEP_OPTIONS,
};

/// A workflow's chain members are plain steps.
const STEPS: Members<Path> = Members {
    after_path: |path, _| Ok(path),
};

impl Parse for WorkflowInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut header = Header::parse(input, &WORKFLOW)?;
        let body = std::mem::take(&mut header.body);
        let (statements, errors) =
            chain::statements(body, |input| chain::statement(input, &WORKFLOW, &STEPS));
        Ok(WorkflowInput::new(header, statements, errors))
    }
}
