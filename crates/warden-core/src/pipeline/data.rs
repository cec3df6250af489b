//! Tenancy: which data source a call's SQL runs on. One shared source, or one per
//! organisation (`{org}` in the data location), chosen from the authenticated caller only.

use std::collections::HashMap;
use std::sync::Arc;

use crate::exec::{DataSource, ExecError};
use crate::identity::Principal;
use crate::project::{DataConfig, Project};

/// Where tool SQL runs: one shared data source, or one per organisation, opened on first use
/// and kept.
#[derive(Debug, Clone)]
pub(super) enum Data {
    Shared(DataSource),
    PerOrg {
        config: DataConfig,
        open: Arc<tokio::sync::Mutex<HashMap<String, DataSource>>>,
    },
}

impl Data {
    pub(super) async fn open(project: &Project) -> Result<Self, ExecError> {
        Ok(if project.data.per_org() {
            Self::PerOrg {
                config: project.data.clone(),
                open: Arc::default(),
            }
        } else {
            Self::Shared(DataSource::open(&project.data).await?)
        })
    }

    /// The data source for this caller: its own organisation's, never another's.
    pub(super) async fn for_caller(
        &self,
        caller: Option<&Principal>,
    ) -> Result<DataSource, ExecError> {
        match self {
            Self::Shared(d) => Ok(d.clone()),
            Self::PerOrg { config, open } => {
                let org = caller.map(|c| c.org.as_str()).ok_or_else(|| {
                    ExecError::Connect("this project keeps data per organisation, so every call needs an authenticated caller".into())
                })?;
                if org.is_empty()
                    || !org
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ExecError::Connect(format!(
                        "'{org}' is not a valid organisation name"
                    )));
                }
                let mut map = open.lock().await;
                if let Some(d) = map.get(org) {
                    return Ok(d.clone());
                }
                let d = DataSource::open(&config.for_org(org)).await?;
                map.insert(org.to_string(), d.clone());
                Ok(d)
            }
        }
    }

    pub(super) fn pools(&self) -> crate::exec::PoolStats {
        match self {
            Self::Shared(d) => d.pools(),
            Self::PerOrg { open, .. } => match open.try_lock() {
                Ok(map) => map.values().map(DataSource::pools).sum(),
                Err(_) => crate::exec::PoolStats::default(),
            },
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Self::Shared(d) => d.close().await,
            Self::PerOrg { open, .. } => {
                for d in open.lock().await.values() {
                    d.close().await;
                }
            }
        }
    }
}
