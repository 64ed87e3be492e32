//! Directory lookups: a mailbox's Graph object from its address, and a clear refusal when the
//! address belongs to a group (groups have addresses but are not mailboxes).

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::Value;

use m365sync_graph::{GraphClient, GraphError};

/// The directory's view of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryUser {
    /// The object id, what Graph paths are best addressed by.
    pub id: String,
    /// The user's sign-in name.
    pub user_principal_name: String,
    /// The primary SMTP address (empty for a user without a mailbox).
    pub mail: String,
    /// The user's display name, used for the mailbox and its CRM user.
    pub display_name: String,
}

/// Why an address is not a mailbox m365sync can sync.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The address is a group's: it has mail but no mailbox to sync.
    #[error("{address} is the group '{name}', not a mailbox; groups cannot be synced: add the group's members' mailboxes instead")]
    IsGroup {
        /// The address looked up.
        address: String,
        /// The group's display name.
        name: String,
    },
    /// Neither a user nor a group has the address.
    #[error("{address} is not a user in the tenant's directory (Request_ResourceNotFound); check the address, or that it is not an alias or a group")]
    NotFound {
        /// The address looked up.
        address: String,
    },
    /// The user lookup itself failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Looks `address` up as a user (`GET /users/{address}`); when the directory has no such user,
/// asks whether it is a group's address so the refusal can say so.
pub async fn lookup_mailbox(
    client: &GraphClient,
    address: &str,
) -> Result<DirectoryUser, LookupError> {
    let url = format!(
        "users/{}?$select=id,userPrincipalName,mail,displayName",
        enc(address)
    );
    match client.get("directory", &url, None).await {
        Ok(v) => Ok(DirectoryUser {
            id: text(&v, "id"),
            user_principal_name: text(&v, "userPrincipalName"),
            mail: text(&v, "mail"),
            display_name: text(&v, "displayName"),
        }),
        Err(GraphError::NotFound { .. }) => {
            let filter = format!("mail eq '{}'", address.replace('\'', "''"));
            let url = format!(
                "groups?$filter={}&$select=id,displayName,mail",
                enc(&filter)
            );
            // A failed group lookup (no Group.Read.All) still leaves a clear "not found".
            if let Ok(v) = client.get("directory", &url, None).await {
                if let Some(g) = v["value"].as_array().and_then(|a| a.first()) {
                    return Err(LookupError::IsGroup {
                        address: address.to_string(),
                        name: text(g, "displayName"),
                    });
                }
            }
            Err(LookupError::NotFound {
                address: address.to_string(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}
