//! What a rule may name, checked when the project loads: the variables its stage puts in the
//! CEL context, and the fields of those whose fields are fixed (`user`, `tool`, `request`,
//! and `args`, whose fields are the declared arguments). A misspelt name would otherwise
//! pass the parser and then fail on every call, which fails closed: every call denied with
//! a policy error.
//!
//! This is not a type checker: it walks the parsed expression for names (identifiers and
//! field selections on them), nothing more.

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr};

use super::Condition;

/// The fields of `user`, as the pipeline builds it (`pipeline::input_policy`).
pub const USER_FIELDS: &[&str] = &["id", "email", "role", "org", "scopes", "attributes"];
/// The fields of `tool`.
pub const TOOL_FIELDS: &[&str] = &["name", "kind", "access", "annotations"];
/// The fields of `request`.
pub const REQUEST_FIELDS: &[&str] = &["source", "client", "method", "time"];

/// The stage a rule runs in: output rules also see `response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Input,
    Output,
}

/// The fields a variable has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// Anything: `response` has the result's own shape.
    Open,
    /// Exactly these; any other is an error, even under `has()` (it can never be true).
    Fixed(Vec<String>),
    /// The declared arguments: reading another is an error unless the expression tests for
    /// it with `has(args.x)` somewhere (a rule that applies to several tools does that).
    Declared(Vec<String>),
}

/// A variable a rule can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub fields: Fields,
}

/// Every variable a rule can read where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub variables: Vec<Variable>,
}

impl Scope {
    /// The variables of `stage`: `user` only when callers sign in (`signed_in`), `args` with
    /// the `arguments` declared where the rule applies, `tool`, `request`, and for output
    /// rules `response`.
    pub fn new(stage: Stage, signed_in: bool, arguments: Vec<String>) -> Self {
        let fixed = |f: &[&str]| Fields::Fixed(f.iter().map(|s| s.to_string()).collect());
        let mut variables = Vec::new();
        if signed_in {
            variables.push(Variable {
                name: "user",
                fields: fixed(USER_FIELDS),
            });
        }
        variables.push(Variable {
            name: "args",
            fields: Fields::Declared(arguments),
        });
        variables.push(Variable {
            name: "tool",
            fields: fixed(TOOL_FIELDS),
        });
        variables.push(Variable {
            name: "request",
            fields: fixed(REQUEST_FIELDS),
        });
        if stage == Stage::Output {
            variables.push(Variable {
                name: "response",
                fields: Fields::Open,
            });
        }
        Self { variables }
    }

    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.variables.iter().map(|v| v.name).collect()
    }
}

/// A name a rule reads that its scope does not have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameProblem {
    /// An identifier that is no variable of the stage (nor a CEL type name).
    UnknownVariable { name: String },
    /// `variable.field` where `variable` has no such field.
    UnknownField { variable: String, field: String },
}

impl Condition {
    /// Every name the expression reads that `scope` does not have, each once, in order.
    pub fn unknown_names(&self, scope: &Scope) -> Vec<NameProblem> {
        let root = self.program.expression();
        let mut tested = BTreeSet::new();
        presence_tests(&root.expr, &mut tested);
        let mut walk = Walk {
            scope,
            tested,
            bound: Vec::new(),
            found: Vec::new(),
        };
        walk.expr(&root.expr);
        walk.found
    }
}

/// The `(variable, field)` pairs the expression tests with `has(variable.field)`.
fn presence_tests<'e>(e: &'e Expr, out: &mut BTreeSet<(&'e str, &'e str)>) {
    if let Expr::Select(s) = e
        && s.test
        && let Expr::Ident(v) = &s.operand.expr
    {
        out.insert((v.as_str(), s.field.as_str()));
    }
    children(e, &mut |c| presence_tests(c, out));
}

/// Calls `f` on each direct sub-expression of `e`.
fn children<'e>(e: &'e Expr, f: &mut impl FnMut(&'e Expr)) {
    match e {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                f(&t.expr);
            }
            for a in &c.args {
                f(&a.expr);
            }
        }
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                f(&x.expr);
            }
        }
        Expr::List(l) => {
            for x in &l.elements {
                f(&x.expr);
            }
        }
        Expr::Map(m) => entries(&m.entries, f),
        Expr::Struct(s) => entries(&s.entries, f),
        Expr::Select(s) => f(&s.operand.expr),
    }
}

fn entries<'e>(entries: &'e [cel::common::ast::IdedEntryExpr], f: &mut impl FnMut(&'e Expr)) {
    for entry in entries {
        match &entry.expr {
            EntryExpr::StructField(field) => f(&field.value.expr),
            EntryExpr::MapEntry(m) => {
                f(&m.key.expr);
                f(&m.value.expr);
            }
        }
    }
}

struct Walk<'s, 'e> {
    scope: &'s Scope,
    tested: BTreeSet<(&'e str, &'e str)>,
    /// Names a comprehension binds (`r` in `rows.exists(r, ...)`), innermost last.
    bound: Vec<&'e str>,
    found: Vec<NameProblem>,
}

impl<'e> Walk<'_, 'e> {
    fn report(&mut self, p: NameProblem) {
        if !self.found.contains(&p) {
            self.found.push(p);
        }
    }

    /// A free identifier: a variable of the scope, a local, or a type name (`int`).
    fn is_known(&self, name: &str) -> bool {
        name.starts_with('@')
            || self.bound.contains(&name)
            || self.scope.variable(name).is_some()
            || super::stdlib().types().find_type(name).is_some()
    }

    fn expr(&mut self, e: &'e Expr) {
        match e {
            Expr::Ident(name) => {
                if !self.is_known(name) {
                    self.report(NameProblem::UnknownVariable { name: name.clone() });
                }
            }
            Expr::Select(s) => {
                if let Expr::Ident(name) = &s.operand.expr {
                    self.field(name, &s.field, s.test);
                } else if let Some(qualified) = qualified_name(e)
                    && super::stdlib().types().find_type(&qualified).is_some()
                {
                    // A qualified type name, e.g. `google.protobuf.Timestamp`.
                } else {
                    self.expr(&s.operand.expr);
                }
            }
            Expr::Comprehension(c) => {
                self.expr(&c.iter_range.expr);
                self.expr(&c.accu_init.expr);
                let depth = self.bound.len();
                self.bound.push(&c.iter_var);
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v);
                }
                self.bound.push(&c.accu_var);
                for x in [&c.loop_cond, &c.loop_step, &c.result] {
                    self.expr(&x.expr);
                }
                self.bound.truncate(depth);
            }
            other => children(other, &mut |c| self.expr(c)),
        }
    }

    /// `name.field`, where `name` is an identifier.
    fn field(&mut self, name: &'e str, field: &'e str, test: bool) {
        if name.starts_with('@') || self.bound.contains(&name) {
            return;
        }
        let Some(var) = self.scope.variable(name) else {
            let qualified = format!("{name}.{field}");
            if super::stdlib().types().find_type(&qualified).is_none() {
                self.report(NameProblem::UnknownVariable {
                    name: name.to_string(),
                });
            }
            return;
        };
        let known = match &var.fields {
            Fields::Open => true,
            Fields::Fixed(f) => f.iter().any(|f| f == field),
            Fields::Declared(f) => {
                test || self.tested.contains(&(name, field)) || f.iter().any(|f| f == field)
            }
        };
        if !known {
            self.report(NameProblem::UnknownField {
                variable: name.to_string(),
                field: field.to_string(),
            });
        }
    }
}

/// `a.b.c` as text, when `e` is an identifier with field selections on it.
fn qualified_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Ident(n) => Some(n.clone()),
        Expr::Select(s) if !s.test => {
            Some(format!("{}.{}", qualified_name(&s.operand.expr)?, s.field))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
