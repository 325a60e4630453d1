//! Objects the apiserver keeps itself (kube-apiserver's post-start hooks):
//! the system namespaces, the default roles and bindings, the
//! `kubernetes` Service's Endpoints and EndpointSlice.
//!
//! Each is created when missing, as any create would make it (uid,
//! creation time, defaults). Some fields the apiserver also puts back when
//! they differ - the address of the `kubernetes` endpoints after a move, a
//! default role's rules after an upgrade - unless the stored object says
//! it may not (an RBAC default whose `autoupdate` annotation a user set to
//! false).

use serde_json::Value;

use api::resources::ResourceType;

use crate::rest::objectmeta;
use crate::status::StatusError;
use crate::storage::{ObjectKey, Store};

/// Makes `object` (of `resource`) exist; if it does and `may_update`
/// allows it, brings its fields `keep` back to `object`'s.
pub async fn ensure(
    store: &Store,
    resource: &'static ResourceType,
    mut object: Value,
    keep: &[&str],
    may_update: impl Fn(&Value) -> bool,
) -> Result<(), StatusError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = object["metadata"]["namespace"].as_str().map(str::to_string);
    let key = ObjectKey::new(resource, namespace.as_deref(), &name);
    match store.get(&key) {
        Some(current) => {
            if keep.iter().all(|f| current.get(*f) == object.get(*f)) || !may_update(&current) {
                return Ok(());
            }
            let mut updated = (*current).clone();
            for field in keep {
                match object.get(*field) {
                    Some(value) => updated[*field] = value.clone(),
                    None => {
                        if let Some(fields) = updated.as_object_mut() {
                            fields.remove(*field);
                        }
                    }
                }
            }
            store
                .write(move |txn| {
                    txn.put(key, updated);
                    Ok(())
                })
                .await
        }
        None => {
            objectmeta::prepare_for_create(resource, &mut object);
            crate::defaults::apply_defaults(resource, &mut object);
            store
                .write(move |txn| {
                    if txn.get(&key).is_none() {
                        txn.put(key, object);
                    }
                    Ok(())
                })
                .await
        }
    }
}
