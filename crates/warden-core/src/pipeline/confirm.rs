//! Confirm: the third key for writes. Without `confirm: true`, the write runs in a
//! transaction that is always rolled back (a preview) and a single-use token bound to
//! exactly this call is minted; with it, that token is redeemed before anything runs.

use crate::authz::Permit;
use crate::confirm::{self, Binding};
use crate::exec::SqlValue;
use crate::project::Tool;

use super::Pipeline;
use super::error::CallError;
use super::request::CallRequest;
use super::response::Preview;

impl Pipeline {
    pub(super) async fn confirm(
        &self,
        permit: &Permit,
        tool: &Tool,
        args: &[SqlValue],
        confirm: bool,
        token: Option<String>,
        req: &CallRequest<'_>,
    ) -> Result<(), CallError> {
        let binding = Binding {
            user: req
                .caller
                .map_or_else(|| "local".to_string(), |c| c.user_id.clone()),
            org: req
                .caller
                .map_or_else(|| "local".to_string(), |c| c.org.clone()),
            tool: tool.name.clone(),
            args_hash: confirm::args_hash(&tool.name, args),
        };
        if !confirm {
            let preview = self
                .data
                .for_caller(req.caller)
                .await?
                .dry_run(permit, &tool.statement, args, &req.cancel)
                .await?;
            let token = self
                .confirmations
                .mint(binding)
                .await
                .map_err(|e| CallError::Confirmation(e.to_string()))?;
            return Err(CallError::ConfirmationRequired(Box::new(Preview {
                tool: tool.name.clone(),
                rows_affected: preview.rows_affected,
                rows: preview.rows,
                token,
                expires_in_secs: confirm::TTL.as_secs(),
            })));
        }
        let token = token.ok_or_else(|| {
            CallError::Confirmation(
                "confirm: true needs the confirmation_token from the preview; call the tool without confirm first".into(),
            )
        })?;
        self.confirmations
            .redeem(&token, &binding)
            .await
            .map_err(|e| CallError::Confirmation(e.to_string()))
    }
}
