//! The name of a workflow or of a step: text written once in the program (what `workflow!` and
//! `saga!` give, or [`Name::from_static`]) is kept as it is, with no copy and no reference
//! count; any other is copied once and shared.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A workflow's or a step's name, as a definition holds it and as every report of its runs
/// gives it back: text written in the program, kept as it is ([`Name::from_static`], what
/// `workflow!` and `saga!` give), or any other text (`&str`, `String`), copied once and then
/// shared by every run.
///
/// Reports hand out clones of the definition's names. A static name is cloned by copying two
/// words: unlike an `Arc<str>`, whose count every run's report would raise and lower, it
/// writes no memory that other runs, on other cores, also write.
///
/// It reads as a `str` (through `Deref`, `AsRef`, `Borrow` and `Display`), and compares,
/// orders and hashes by its text, whichever way it was made.
///
/// ```
/// # use sagaflow_core::runtime::{Builder, Name};
/// let written = Name::from_static("charge");
/// let made: Name = format!("charge").into();
/// assert_eq!(written, made);
/// assert_eq!(written, "charge");
/// assert_eq!(made.len(), 6);
/// assert!(written.is_static() && !made.is_static());
///
/// // The builder takes either, and any `&str`.
/// let by_hand = Builder::<u32>::new(Name::from_static("Order"));
/// let from_text = Builder::<u32>::new("Order");
/// ```
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    /// A name written in the program; cloning it costs nothing.
    pub const fn from_static(name: &'static str) -> Self {
        Name(Repr::Static(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(name) => name,
            Repr::Shared(name) => name,
        }
    }

    /// Whether the name was written in the program (`&'static str`) rather than made at run
    /// time, and so is cloned without a reference count.
    pub fn is_static(&self) -> bool {
        matches!(self.0, Repr::Static(_))
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::from_static("")
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that a map keyed by `Name` can be read with a `&str`.
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

/// Copies the text: for text written in the program, [`Name::from_static`] spares the copy.
impl From<&str> for Name {
    fn from(name: &str) -> Self {
        Name(Repr::Shared(Arc::from(name)))
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Name(Repr::Shared(name.into()))
    }
}

impl From<&String> for Name {
    fn from(name: &String) -> Self {
        Name(Repr::Shared(Arc::from(name.as_str())))
    }
}

impl From<Box<str>> for Name {
    fn from(name: Box<str>) -> Self {
        Name(Repr::Shared(name.into()))
    }
}

impl From<Arc<str>> for Name {
    fn from(name: Arc<str>) -> Self {
        Name(Repr::Shared(name))
    }
}

impl From<Cow<'static, str>> for Name {
    fn from(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => Name::from_static(name),
            Cow::Owned(name) => name.into(),
        }
    }
}

impl From<&Name> for Name {
    fn from(name: &Name) -> Self {
        name.clone()
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.as_str().to_owned()
    }
}

impl From<Name> for Arc<str> {
    fn from(name: Name) -> Self {
        match name.0 {
            Repr::Static(name) => Arc::from(name),
            Repr::Shared(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_name_compares_and_hashes_as_its_text_however_it_was_made() {
        let written = Name::from_static("load");
        let made = Name::from(String::from("load"));
        let shared = Name::from(Arc::<str>::from("load"));
        assert_eq!(written, made);
        assert_eq!(made, shared);
        assert_ne!(written, Name::from("clean"));
        assert!(Name::from_static("audit") < written);
        let mut by_name = HashMap::new();
        by_name.insert(made, 1);
        assert_eq!(by_name.get("load"), Some(&1));
        assert_eq!(by_name.get(&written), Some(&1));
        assert_eq!(format!("{written} {shared:?}"), "load \"load\"");
        assert_eq!(String::from(shared), "load");
    }

    #[test]
    fn a_written_name_is_kept_as_written_and_a_made_one_is_shared() {
        let text: &'static str = "extract";
        let written = Name::from_static(text);
        assert!(written.is_static());
        // The clone points at the program's text: nothing was copied.
        assert_eq!(written.clone().as_ptr(), text.as_ptr());
        let made = Name::from(format!("step {}", 7));
        assert!(!made.is_static());
        let clone = made.clone();
        assert_eq!(clone.as_ptr(), made.as_ptr(), "a clone shares the text");
        assert!(
            !Name::from("x").is_static(),
            "a `&str` of any lifetime is copied"
        );
        assert!(Name::from(Cow::Borrowed("x")).is_static());
        assert!(!Name::from(Cow::<str>::Owned("x".into())).is_static());
    }
}
