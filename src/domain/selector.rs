//! Kubernetes label selectors, the string form `kubectl -l` and list calls take: `app=web`,
//! `app==web`, `tier!=db`, `env in (a,b)`, `env notin (a)`, `canary`, `!canary`, joined by
//! commas (every requirement must hold). Also the plain label sets (`app=web,tier=db`) a CI
//! job sends to say which labels a Deployment has.
//!
//! Owns: parsing (with the API server's grammar and its key and value rules, so a selector
//! burnguard accepts is one Kubernetes accepts) and matching a label set. Must not touch: where
//! selectors come from or what they select; numeric `>`/`<` requirements are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A set of labels, as a Kubernetes object carries them.
pub type Labels = BTreeMap<String, String>;

/// Why a selector or a label set could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("it is empty")]
    Empty,
    #[error("`{key}` is not a label key: {why}")]
    InvalidKey { key: String, why: &'static str },
    #[error("`{value}` is not a label value for `{key}`: {why}")]
    InvalidValue {
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("at character {at}: expected {expected}, found {found}")]
    Unexpected {
        /// 1-based character position.
        at: usize,
        expected: &'static str,
        found: String,
    },
    #[error("`{key} {operator} ()` lists no values; give at least one")]
    EmptySet { key: String, operator: &'static str },
    #[error(
        "`{operator}` compares numbers and is not supported here; use =, ==, !=, in, notin, key or !key"
    )]
    Unsupported { operator: &'static str },
    #[error("`{key}` is given twice")]
    DuplicateLabel { key: String },
}

type Result<T, E = SelectorError> = std::result::Result<T, E>;

/// What one requirement asks of a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value` or `key==value`: present with this value.
    Equals(String),
    /// `key!=value`: absent, or present with another value.
    NotEquals(String),
    /// `key in (a,b)`: present with one of these values.
    In(BTreeSet<String>),
    /// `key notin (a,b)`: absent, or present with none of these values.
    NotIn(BTreeSet<String>),
    /// `key`: present, whatever its value.
    Exists,
    /// `!key`: absent.
    DoesNotExist,
}

/// One comma-separated part of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::Equals(v) => value == Some(v),
            Operator::NotEquals(v) => value != Some(v),
            Operator::In(set) => value.is_some_and(|v| set.contains(v)),
            Operator::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A parsed label selector: every requirement must hold. Never empty (an empty selector would
/// select everything, which is never what a freeze means).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the string form, with the API server's grammar and key/value rules.
    pub fn parse(text: &str) -> Result<Self> {
        let tokens = lex(text)?;
        if tokens.is_empty() {
            return Err(SelectorError::Empty);
        }
        let mut parser = Parser { tokens, next: 0 };
        let mut requirements = vec![parser.requirement()?];
        while let Some(token) = parser.take() {
            match token.kind {
                Kind::Comma => requirements.push(parser.requirement()?),
                _ => return Err(token.unexpected("',' or the end")),
            }
        }
        Ok(Self { requirements })
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match &self.operator {
            Operator::Equals(v) => write!(f, "{}={v}", self.key),
            Operator::NotEquals(v) => write!(f, "{}!={v}", self.key),
            Operator::In(s) => write!(f, "{} in ({})", self.key, set(s)),
            Operator::NotIn(s) => write!(f, "{} notin ({})", self.key, set(s)),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// The canonical string form, which parses back to the same selector.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Parses a label set, `key=value` pairs joined by commas (`app=web,tier=db`); the empty
/// string is the empty set. Keys and values follow Kubernetes' rules; a key may appear once.
pub fn parse_labels(text: &str) -> Result<Labels> {
    let mut labels = Labels::new();
    if text.trim().is_empty() {
        return Ok(labels);
    }
    let mut at = 1;
    for pair in text.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(SelectorError::Unexpected {
                at,
                expected: "key=value",
                found: format!("`{}`", pair.trim()),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        check_key(key)?;
        check_value(key, value)?;
        if labels.insert(key.into(), value.into()).is_some() {
            return Err(SelectorError::DuplicateLabel { key: key.into() });
        }
        at += pair.chars().count() + 1;
    }
    Ok(labels)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Identifier(String),
    Open,
    Close,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    /// 1-based character position.
    at: usize,
}

impl Token {
    fn unexpected(&self, expected: &'static str) -> SelectorError {
        let found = match &self.kind {
            Kind::Identifier(s) => s.as_str(),
            Kind::Open => "(",
            Kind::Close => ")",
            Kind::Comma => ",",
            Kind::Not => "!",
            Kind::Equals => "=",
            Kind::DoubleEquals => "==",
            Kind::NotEquals => "!=",
            Kind::In => "in",
            Kind::NotIn => "notin",
        };
        SelectorError::Unexpected {
            at: self.at,
            expected,
            found: format!("`{found}`"),
        }
    }
}

/// Characters that end an identifier, as in the API server's lexer.
fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

fn lex(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        let next = chars.get(i + 1).copied();
        let (kind, width) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Kind::Open, 1),
            ')' => (Kind::Close, 1),
            ',' => (Kind::Comma, 1),
            '!' if next == Some('=') => (Kind::NotEquals, 2),
            '!' => (Kind::Not, 1),
            '=' if next == Some('=') => (Kind::DoubleEquals, 2),
            '=' => (Kind::Equals, 1),
            '>' => return Err(SelectorError::Unsupported { operator: ">" }),
            '<' => return Err(SelectorError::Unsupported { operator: "<" }),
            _ => {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| !c.is_whitespace() && !is_special(**c))
                    .collect();
                let width = word.chars().count();
                let kind = match word.as_str() {
                    "in" => Kind::In,
                    "notin" => Kind::NotIn,
                    _ => Kind::Identifier(word),
                };
                (kind, width)
            }
        };
        tokens.push(Token { kind, at });
        i += width;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Kind> {
        self.tokens.get(self.next).map(|t| &t.kind)
    }

    fn take(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        self.next += token.is_some() as usize;
        token
    }

    /// Nothing more to read where `expected` should come.
    fn end(&self, expected: &'static str) -> SelectorError {
        let at = self.tokens.last().map_or(1, |t| {
            let width = match &t.kind {
                Kind::Identifier(word) => word.chars().count(),
                Kind::DoubleEquals | Kind::NotEquals | Kind::In => 2,
                Kind::NotIn => 5,
                _ => 1,
            };
            t.at + width
        });
        SelectorError::Unexpected {
            at,
            expected,
            found: "the end".into(),
        }
    }

    fn identifier(&mut self, expected: &'static str) -> Result<String> {
        match self.take() {
            Some(Token {
                kind: Kind::Identifier(word),
                ..
            }) => Ok(word),
            Some(token) => Err(token.unexpected(expected)),
            None => Err(self.end(expected)),
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        if self.peek() == Some(&Kind::Not) {
            self.take();
            let key = self.identifier("a label key after `!`")?;
            check_key(&key)?;
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
            });
        }
        let key = self.identifier("a label key or `!key`")?;
        check_key(&key)?;
        let operator = match self.peek() {
            None | Some(Kind::Comma) => Operator::Exists,
            Some(Kind::Equals | Kind::DoubleEquals | Kind::NotEquals) => {
                let equals = self.take().map(|t| t.kind) != Some(Kind::NotEquals);
                let value = match self.peek() {
                    None | Some(Kind::Comma) => String::new(),
                    _ => self.identifier("a label value")?,
                };
                check_value(&key, &value)?;
                if equals {
                    Operator::Equals(value)
                } else {
                    Operator::NotEquals(value)
                }
            }
            Some(Kind::In | Kind::NotIn) => {
                let is_in = self.take().map(|t| t.kind) == Some(Kind::In);
                let name = if is_in { "in" } else { "notin" };
                let values = self.values(&key, name)?;
                if is_in {
                    Operator::In(values)
                } else {
                    Operator::NotIn(values)
                }
            }
            Some(_) => {
                let expected = "=, ==, !=, in, notin, ',' or the end";
                return Err(match self.take() {
                    Some(token) => token.unexpected(expected),
                    None => SelectorError::Empty,
                });
            }
        };
        Ok(Requirement { key, operator })
    }

    /// `(a, b, c)` after `in` or `notin`.
    fn values(&mut self, key: &str, operator: &'static str) -> Result<BTreeSet<String>> {
        match self.take() {
            Some(Token {
                kind: Kind::Open, ..
            }) => {}
            Some(token) => return Err(token.unexpected("`(` and a list of values")),
            None => return Err(self.end("`(` and a list of values")),
        }
        if self.peek() == Some(&Kind::Close) {
            return Err(SelectorError::EmptySet {
                key: key.into(),
                operator,
            });
        }
        let mut values = BTreeSet::new();
        loop {
            // Never empty: the lexer makes no empty identifiers, so `(a,,b)` fails here.
            let value = self.identifier("a label value")?;
            check_value(key, &value)?;
            values.insert(value);
            match self.take() {
                Some(Token {
                    kind: Kind::Comma, ..
                }) => continue,
                Some(Token {
                    kind: Kind::Close, ..
                }) => return Ok(values),
                Some(token) => return Err(token.unexpected("`,` or `)`")),
                None => return Err(self.end("`,` or `)`")),
            }
        }
    }
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the shape of a key's name and of a value.
fn is_name_shaped(text: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    text.starts_with(alnum)
        && text.ends_with(alnum)
        && text.chars().all(|c| alnum(c) || "-_.".contains(c))
}

/// A DNS subdomain: dot-separated lowercase labels of letters, digits and '-'.
fn is_dns_subdomain(text: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    text.len() <= 253 && text.split('.').all(label_ok)
}

fn check_key(key: &str) -> Result<()> {
    let bad = |why| SelectorError::InvalidKey {
        key: key.into(),
        why,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(bad(
            "its prefix must be a DNS subdomain such as app.kubernetes.io",
        ));
    }
    if name.is_empty() || name.len() > 63 {
        return Err(bad("its name must be 1 to 63 characters"));
    }
    if !is_name_shaped(name) {
        return Err(bad(
            "its name must be letters, digits, '-', '_' or '.', beginning and ending with a letter or digit",
        ));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<()> {
    let bad = |why| SelectorError::InvalidValue {
        key: key.into(),
        value: value.into(),
        why,
    };
    if value.len() > 63 {
        return Err(bad("it is longer than 63 characters"));
    }
    if !value.is_empty() && !is_name_shaped(value) {
        return Err(bad(
            "it must be letters, digits, '-', '_' or '.', beginning and ending with a letter or digit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_label_sets_as_kubernetes_does() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]);
        let canary = labels(&[("app", "web"), ("canary", "true")]);
        let none = labels(&[]);
        let cases: &[(&str, &str, &Labels, bool)] = &[
            ("equality holds for the same value", "app=web", &web, true),
            ("double equals is equality", "app==web", &web, true),
            ("equality fails for another value", "app=api", &web, false),
            (
                "equality fails for a missing label",
                "app=web",
                &none,
                false,
            ),
            ("inequality holds for another value", "tier!=db", &web, true),
            (
                "inequality fails for the same value",
                "tier!=front",
                &web,
                false,
            ),
            (
                "inequality holds for a missing label",
                "tier!=db",
                &none,
                true,
            ),
            (
                "in holds for a listed value",
                "env in (staging,prod)",
                &web,
                true,
            ),
            (
                "in fails for an unlisted value",
                "env in (dev)",
                &web,
                false,
            ),
            (
                "in fails for a missing label",
                "env in (prod)",
                &none,
                false,
            ),
            (
                "notin holds for an unlisted value",
                "env notin (dev)",
                &web,
                true,
            ),
            (
                "notin fails for a listed value",
                "env notin (prod)",
                &web,
                false,
            ),
            (
                "notin holds for a missing label",
                "env notin (prod)",
                &none,
                true,
            ),
            (
                "existence holds whatever the value",
                "canary",
                &canary,
                true,
            ),
            ("existence fails when absent", "canary", &web, false),
            ("absence holds when absent", "!canary", &web, true),
            ("absence fails when present", "!canary", &canary, false),
            (
                "absence holds for an object without labels",
                "!canary",
                &none,
                true,
            ),
            (
                "every requirement must hold",
                "app=web,!canary,env in (prod)",
                &web,
                true,
            ),
            (
                "one failing requirement fails the selector",
                "app=web,!canary",
                &canary,
                false,
            ),
            (
                "spaces around tokens do not matter",
                " app = web , tier != db ",
                &web,
                true,
            ),
            (
                "an empty value matches only an empty label",
                "app=",
                &web,
                false,
            ),
        ];
        for (name, selector, set, want) in cases {
            let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.matches(set), *want, "{name}: {selector}");
        }
    }

    #[test]
    fn selectors_parse_into_requirements() {
        /// (case, selector, its requirements)
        type Case<'a> = (&'a str, &'a str, Vec<(&'a str, Operator)>);
        let cases: &[Case<'_>] = &[
            (
                "a plain equality",
                "app=web",
                vec![("app", Operator::Equals("web".into()))],
            ),
            (
                "a prefixed key",
                "app.kubernetes.io/part-of==shop",
                vec![("app.kubernetes.io/part-of", Operator::Equals("shop".into()))],
            ),
            (
                "a set without spaces before the parenthesis",
                "env in(a, b)",
                vec![(
                    "env",
                    Operator::In(["a".to_string(), "b".to_string()].into()),
                )],
            ),
            (
                "existence and absence",
                "release,!canary",
                vec![
                    ("release", Operator::Exists),
                    ("canary", Operator::DoesNotExist),
                ],
            ),
        ];
        for (name, text, want) in cases {
            let got = LabelSelector::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want: Vec<Requirement> = want
                .iter()
                .map(|(k, op)| Requirement {
                    key: k.to_string(),
                    operator: op.clone(),
                })
                .collect();
            assert_eq!(got.requirements(), want.as_slice(), "{name}");
        }
    }

    #[test]
    fn broken_selectors_say_what_is_wrong() {
        let cases: &[(&str, &str, &str)] = &[
            ("an empty selector", "", "it is empty"),
            ("only spaces", "   ", "it is empty"),
            (
                "a space inside a value",
                "app=val ue",
                "expected ',' or the end, found `ue`",
            ),
            ("two equals signs", "app=web=x", "found `=`"),
            (
                "a set without parentheses",
                "env in a,b",
                "expected `(` and a list of values, found `a`",
            ),
            (
                "an unclosed set",
                "env in (a,b",
                "expected `,` or `)`, found the end",
            ),
            (
                "an empty set",
                "env notin ()",
                "`env notin ()` lists no values",
            ),
            ("an empty value in a set", "env in (a,,b)", "found `,`"),
            (
                "an opening parenthesis first",
                "(app=web",
                "expected a label key or `!key`, found `(`",
            ),
            ("a key with a space", "Bad Key=1", "found `Key`"),
            ("a trailing comma", "app=web,", "found the end"),
            (
                "a bang without a key",
                "!",
                "a label key after `!`, found the end",
            ),
            (
                "a key starting with a dash",
                "-app=web",
                "`-app` is not a label key",
            ),
            (
                "an uppercase prefix",
                "Example.com/app=web",
                "its prefix must be a DNS subdomain",
            ),
            (
                "a key name over 63 characters",
                &format!("{}=x", "a".repeat(64)),
                "1 to 63 characters",
            ),
            (
                "a value ending with a dash",
                "app=web-",
                "`web-` is not a label value for `app`",
            ),
            (
                "a value over 63 characters",
                &format!("app={}", "v".repeat(64)),
                "longer than 63",
            ),
            ("a numeric comparison", "replicas>3", "`>` compares numbers"),
            ("an operator without a key", "=web", "found `=`"),
        ];
        for (name, text, want) in cases {
            let error = LabelSelector::parse(text).expect_err(name).to_string();
            assert!(error.contains(want), "{name}: {text:?} gave {error:?}");
        }
    }

    #[test]
    fn errors_point_at_the_character() {
        let error = LabelSelector::parse("app=web,tier db").unwrap_err();
        assert_eq!(
            error,
            SelectorError::Unexpected {
                at: 14,
                expected: "=, ==, !=, in, notin, ',' or the end",
                found: "`db`".into()
            }
        );
    }

    #[test]
    fn label_sets_parse_from_the_gate_query() {
        let cases: &[(&str, &str, Result<Labels, &str>)] = &[
            ("the empty string is no labels", "", Ok(labels(&[]))),
            ("one pair", "app=web", Ok(labels(&[("app", "web")]))),
            (
                "several pairs with a prefixed key",
                "app=web, app.kubernetes.io/part-of=shop",
                Ok(labels(&[
                    ("app", "web"),
                    ("app.kubernetes.io/part-of", "shop"),
                ])),
            ),
            ("an empty value", "canary=", Ok(labels(&[("canary", "")]))),
            (
                "a pair without equals",
                "app",
                Err("expected key=value, found `app`"),
            ),
            (
                "a key given twice",
                "app=a,app=b",
                Err("`app` is given twice"),
            ),
            (
                "a bad key",
                "app=web,b@d=1",
                Err("`b@d` is not a label key"),
            ),
            ("a bad value", "app=w b", Err("`w b` is not a label value")),
        ];
        for (name, text, want) in cases {
            match (parse_labels(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{name}"),
                (Err(got), Err(want)) => {
                    assert!(got.to_string().contains(want), "{name}: {got}")
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// One valid requirement, with random spacing.
    fn requirement_text() -> impl Strategy<Value = String> {
        let key = "(x\\.io/)?[a-c][a-c0-9._-]{0,3}[a-c]";
        let value = "[a-c0-9]([a-c0-9._-]{0,3}[a-c0-9])?";
        let space = "[ ]{0,2}";
        (key, value, value, space, 0..7u8).prop_map(|(k, v, w, sp, op)| match op {
            0 => format!("{k}{sp}={sp}{v}"),
            1 => format!("{k}=={v}"),
            2 => format!("{k}{sp}!={sp}{v}"),
            3 => format!("{k} in{sp}({v},{sp}{w})"),
            4 => format!("{k} notin ({v})"),
            5 => format!("{sp}{k}{sp}"),
            _ => format!("!{sp}{k}"),
        })
    }

    proptest! {
        #[test]
        fn parsing_any_string_never_panics(text in any::<String>()) {
            let _ = LabelSelector::parse(&text);
            let _ = parse_labels(&text);
        }

        #[test]
        fn selector_shaped_strings_never_panic_and_valid_ones_round_trip(
            parts in proptest::collection::vec(requirement_text(), 1..5),
            noise in "[ a=!(),]{0,2}",
            cut in 0usize..40,
        ) {
            let text = parts.join(",");
            let selector = LabelSelector::parse(&text);
            prop_assert!(selector.is_ok(), "{text:?}: {selector:?}");
            let selector = selector.unwrap();
            prop_assert_eq!(LabelSelector::parse(&selector.to_string()), Ok(selector));
            // Damaged selectors: an error or a selector, never a panic.
            let mut damaged: String = text.chars().take(cut).collect();
            damaged.push_str(&noise);
            let _ = LabelSelector::parse(&damaged);
        }
    }
}
