//! `resources/read`: find, authorize, input policy, execute, output policy, one record.

use std::time::Instant;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::audit::Peer;
use crate::identity::Principal;
use crate::project::{Access, Resource, ResourceUri};

use super::Pipeline;
use super::arguments::{bind_caller, bind_uri};
use super::error::ResourceError;
use super::input_policy::resource_variables;
use super::output::resource_body;
use super::record;
use super::request::Source;
use super::response::ResourceContents;

impl Pipeline {
    /// The resource a URI names, with the values of its template's variables.
    pub fn find_resource(&self, uri: &str) -> Option<(&Resource, Vec<(String, String)>)> {
        self.project.resources.iter().find_map(|r| match &r.uri {
            ResourceUri::Fixed(f) if f == uri => Some((r, Vec::new())),
            ResourceUri::Template(t) => t.matches(uri).map(|v| (r, v)),
            ResourceUri::Fixed(_) => None,
        })
    }

    /// Reads a resource for `caller`, and records the read (or its refusal).
    pub async fn read_resource(
        &self,
        uri: &str,
        caller: Option<&Principal>,
        source: Source,
        peer: &Peer,
        cancel: &CancellationToken,
    ) -> Result<ResourceContents, ResourceError> {
        let started = Instant::now();
        let result = self.read_resource_unrecorded(uri, caller, cancel).await;
        if let Err(ResourceError::Audit(_)) = &result {
            record::measure_outcome("resources/read", None, None, peer, started);
            return result;
        }
        let mut event = record::call_event("resource_read", uri, caller, source, peer);
        record::finish_resource(&mut event, &result, started);
        // The URI is not a label: its template variables are the caller's values.
        let outcome = event.outcome;
        let recorded = self.audit.record(event).await;
        let outcome = recorded.as_ref().ok().map(|()| outcome);
        record::measure_outcome("resources/read", None, outcome, peer, started);
        recorded?;
        result
    }

    /// The stages of a read, without its record (a prompt that embeds resources records
    /// them in its own).
    pub(super) async fn read_resource_unrecorded(
        &self,
        uri: &str,
        caller: Option<&Principal>,
        cancel: &CancellationToken,
    ) -> Result<ResourceContents, ResourceError> {
        let (resource, uri_vars) = self
            .find_resource(uri)
            .ok_or_else(|| ResourceError::NotFound(uri.to_string()))?;
        let permit = self
            .authorize(caller, Access::Read)
            .map_err(ResourceError::Denied)?;
        let mut args = bind_uri(&resource.statement.names, &uri_vars);
        bind_caller(&resource.statement.names, &mut args, caller);
        let uri_vars: Map<String, Value> = uri_vars
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let mut vars = resource_variables(&resource.name, "resource", &uri_vars, caller);
        self.project
            .policies
            .check_input(&vars)
            .map_err(ResourceError::Policy)?;
        let out = self
            .data
            .for_caller(caller)
            .await?
            .run(&permit, &resource.statement, &args, cancel)
            .await?;
        let first = out
            .rows
            .first()
            .and_then(|row| row.values().next())
            .filter(|v| !v.is_null())
            .ok_or_else(|| ResourceError::NoRow {
                uri: uri.to_string(),
                resource: resource.name.clone(),
            })?;
        let text = match first {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let body = resource_body(&self.project.policies, resource, &mut vars, text)?;
        Ok(ResourceContents {
            uri: uri.to_string(),
            mime_type: resource.mime_type.clone(),
            body,
        })
    }
}
