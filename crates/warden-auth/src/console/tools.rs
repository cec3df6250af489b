//! What each role sees and may call among the project's tools, and the "why" form: for one
//! member and one tool, the answer `warden why` gives, from the same function
//! (`warden_core::pipeline::explain`), so the page and the CLI cannot disagree.

use warden_core::identity::Principal;
use warden_core::project::{Access, Project};
use warden_store::{Role, Scopes};

use super::{Admin, Console, ConsoleError};

/// One role's view of one tool, with full scopes (`mcp:read mcp:write`).
#[derive(Debug, Clone, Copy)]
pub struct RoleAccess {
    pub role: Role,
    /// `tools/list` shows it.
    pub sees: bool,
    /// A call is let through the role and scope checks (input policies still apply).
    pub may_call: bool,
}

/// One tool and what every role may do with it.
#[derive(Debug, Clone)]
pub struct ToolAccess {
    pub name: String,
    pub description: String,
    pub access: Access,
    pub roles: Vec<RoleAccess>,
}

/// The "why" form's answer: one line per scope set, as `warden why` prints them.
#[derive(Debug, Clone)]
pub struct WhyAnswer {
    pub email: String,
    pub role: Role,
    pub tool: String,
    /// `(scopes, allowed, the rules)`.
    pub verdicts: Vec<(String, bool, String)>,
}

fn caller(user_id: String, email: String, org: String, role: Role, scopes: Scopes) -> Principal {
    Principal {
        user_id,
        email,
        org,
        role,
        scopes,
        method: "explain",
        credential: String::new(),
    }
}

impl Console {
    /// Every tool of the project, with what each role sees and may call.
    pub fn tools(&self, admin: &Admin, project: &Project) -> Vec<ToolAccess> {
        let org = admin.0.org.slug.clone();
        project
            .tools
            .iter()
            .map(|t| ToolAccess {
                name: t.name.clone(),
                description: t.description.clone(),
                access: t.access,
                roles: Role::ALL
                    .iter()
                    .map(|&role| {
                        let c = caller(
                            String::new(),
                            String::new(),
                            org.clone(),
                            role,
                            Scopes::READ_WRITE,
                        );
                        RoleAccess {
                            role,
                            sees: warden_core::authz::visible(
                                &c,
                                t.access,
                                project.show_write_tools,
                            ),
                            may_call: warden_core::authz::decide(&c, t.access).is_ok(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Whether the member with e-mail `email` may call `tool`, with `args` (a JSON object, or
    /// empty for none), through an app with read scope and with read and write scope.
    /// Only members of the Admin's organisation can be asked about.
    pub async fn why(
        &self,
        admin: &Admin,
        project: &Project,
        email: &str,
        tool: &str,
        args: &str,
    ) -> Result<WhyAnswer, ConsoleError> {
        let t = project.tool(tool.trim()).ok_or_else(|| {
            ConsoleError::Invalid(format!(
                "There is no tool called {:?}; pick one from the list.",
                tool.trim()
            ))
        })?;
        let args: Option<serde_json::Map<String, serde_json::Value>> = match args.trim() {
            "" => None,
            text => match serde_json::from_str(text) {
                Ok(serde_json::Value::Object(m)) => Some(m),
                Ok(_) | Err(_) => {
                    return Err(ConsoleError::Invalid(
                        "Arguments must be a JSON object, such as {\"query\": \"Cloud\"}, or empty."
                            .into(),
                    ));
                }
            },
        };
        let org = &admin.0.org;
        let member = match self.store.user_by_email(email).await? {
            Some(u) => self
                .store
                .membership(org.id, u.id)
                .await?
                .map(|m| (u, m.role)),
            None => None,
        };
        let Some((user, role)) = member else {
            return Err(ConsoleError::NotFound(format!(
                "{:?} is not a member of {}; ask about one of its members.",
                email.trim(),
                org.name
            )));
        };
        let verdicts = [Scopes::READ, Scopes::READ_WRITE]
            .into_iter()
            .map(|scopes| {
                let c = caller(
                    user.id.to_string(),
                    user.email.clone(),
                    org.slug.clone(),
                    role,
                    scopes,
                );
                match warden_core::pipeline::explain(t, &c, args.as_ref()) {
                    Ok(v) => (scopes.to_string(), true, v),
                    Err(v) => (scopes.to_string(), false, v),
                }
            })
            .collect();
        Ok(WhyAnswer {
            email: user.email,
            role,
            tool: t.name.clone(),
            verdicts,
        })
    }
}
