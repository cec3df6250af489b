//! Result rows to JSON. SQLite reports each value's storage class; PostgreSQL reports the
//! column type. Types with no faithful JSON form are an error that says how to cast.

use base64::Engine;
use serde_json::{Map, Value, json};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::ExecError;

fn unsupported(column: &str, ty: &str) -> ExecError {
    ExecError::UnsupportedType {
        column: column.to_string(),
        ty: ty.to_string(),
    }
}

fn decode_err(column: &str, e: sqlx::Error) -> ExecError {
    ExecError::Database(format!("cannot read column '{column}': {e}"))
}

/// How a BLOB travels in JSON.
pub(super) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) fn sqlite_row(row: &SqliteRow) -> Result<Map<String, Value>, ExecError> {
    let mut out = Map::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        let raw = row.try_get_raw(i).map_err(|e| decode_err(name, e))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let ty = raw.type_info().name().to_ascii_uppercase();
            match ty.as_str() {
                "INTEGER" | "INT" | "INT8" | "BIGINT" => {
                    json!(row.try_get::<i64, _>(i).map_err(|e| decode_err(name, e))?)
                }
                "BOOLEAN" | "BOOL" => {
                    json!(row.try_get::<bool, _>(i).map_err(|e| decode_err(name, e))?)
                }
                "REAL" | "FLOAT" | "DOUBLE" | "NUMERIC" => {
                    json!(row.try_get::<f64, _>(i).map_err(|e| decode_err(name, e))?)
                }
                "BLOB" => {
                    let bytes: Vec<u8> = row.try_get(i).map_err(|e| decode_err(name, e))?;
                    json!(base64(&bytes))
                }
                _ => json!(
                    row.try_get::<String, _>(i)
                        .map_err(|e| decode_err(name, e))?
                ),
            }
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

pub(super) fn pg_row(row: &PgRow) -> Result<Map<String, Value>, ExecError> {
    let mut out = Map::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let name = col.name();
        let raw = row.try_get_raw(i).map_err(|e| decode_err(name, e))?;
        if raw.is_null() {
            out.insert(name.to_string(), Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_string();
        let get = |e| decode_err(name, e);
        let value = match ty.as_str() {
            "BOOL" => json!(row.try_get::<bool, _>(i).map_err(get)?),
            "INT2" => json!(row.try_get::<i16, _>(i).map_err(get)?),
            "INT4" => json!(row.try_get::<i32, _>(i).map_err(get)?),
            "INT8" => json!(row.try_get::<i64, _>(i).map_err(get)?),
            "FLOAT4" => json!(row.try_get::<f32, _>(i).map_err(get)?),
            "FLOAT8" => json!(row.try_get::<f64, _>(i).map_err(get)?),
            "NUMERIC" => {
                let d: rust_decimal::Decimal = row.try_get(i).map_err(get)?;
                // Exact decimals travel as numbers when they fit, as text otherwise.
                match d.to_string().parse::<serde_json::Number>() {
                    Ok(n) => Value::Number(n),
                    Err(_) => json!(d.to_string()),
                }
            }
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" => {
                json!(row.try_get::<String, _>(i).map_err(get)?)
            }
            "JSON" | "JSONB" => row.try_get::<Value, _>(i).map_err(get)?,
            "UUID" => json!(row.try_get::<uuid::Uuid, _>(i).map_err(get)?.to_string()),
            "TIMESTAMPTZ" => json!(
                row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                    .map_err(get)?
                    .to_rfc3339()
            ),
            "TIMESTAMP" => json!(
                row.try_get::<chrono::NaiveDateTime, _>(i)
                    .map_err(get)?
                    .to_string()
            ),
            "DATE" => json!(
                row.try_get::<chrono::NaiveDate, _>(i)
                    .map_err(get)?
                    .to_string()
            ),
            "BYTEA" => json!(
                base64::engine::general_purpose::STANDARD
                    .encode(row.try_get::<Vec<u8>, _>(i).map_err(get)?)
            ),
            "TEXT[]" | "VARCHAR[]" => json!(row.try_get::<Vec<String>, _>(i).map_err(get)?),
            "INT4[]" => json!(row.try_get::<Vec<i32>, _>(i).map_err(get)?),
            "INT8[]" => json!(row.try_get::<Vec<i64>, _>(i).map_err(get)?),
            other => return Err(unsupported(name, other)),
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}
