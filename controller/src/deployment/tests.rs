//! The pure parts: hashes, arithmetic, conditions.

use super::hash::*;
use super::rolling::*;
use super::*;

fn template(image: &str) -> PodTemplateSpec {
    serde_json::from_value(json!({
        "metadata": {"labels": {"app": "ngx-dep"}},
        "spec": {"containers": [{"name": "nginx", "image": image}]}
    }))
    .unwrap()
}

#[test]
fn hashes_look_like_upstream_ones() {
    let hash = pod_template_hash(&template("nginx:alpine"), None);
    assert!((1..=10).contains(&hash.len()), "{hash}");
    // Decimal digits land on "4bcdf56789" of the safe alphabet.
    assert!(hash.chars().all(|c| "456789bcdf".contains(c)), "{hash}");
    assert_eq!(
        hash,
        pod_template_hash(&template("nginx:alpine"), None),
        "stable"
    );
    assert_ne!(hash, pod_template_hash(&template("nginx:1.27"), None));
    assert_ne!(hash, pod_template_hash(&template("nginx:alpine"), Some(1)));
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
}

#[test]
fn fnv32a_matches_the_reference_vectors() {
    assert_eq!(fnv32a(b"", FNV32_OFFSET), 0x811c9dc5);
    assert_eq!(fnv32a(b"a", FNV32_OFFSET), 0xe40c292c);
    assert_eq!(fnv32a(b"foobar", FNV32_OFFSET), 0xbf9cf968);
}

#[test]
fn templates_compare_without_the_hash_label() {
    let mut with_hash = template("nginx:alpine");
    with_hash
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
    assert!(equal_ignoring_hash(&with_hash, &template("nginx:alpine")));
    assert!(!equal_ignoring_hash(&with_hash, &template("nginx:1.27")));
}

#[test]
fn percentages_round_like_upstream() {
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
    assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
    assert_eq!(scaled_value(&IntOrString::Int(4), 10, true), Ok(4));
    assert!(scaled_value(&pct("25"), 10, true).is_err());
    assert!(scaled_value(&pct("x%"), 10, true).is_err());
    // The lesson's 2 replicas with the defaults: surge 1, unavailable 0.
    assert_eq!(resolve_fenceposts(None, None, 2), Ok((1, 0)));
    assert_eq!(resolve_fenceposts(None, None, 5), Ok((2, 1)));
    // Both zero would never move: one may be unavailable.
    let zero = IntOrString::Int(0);
    assert_eq!(resolve_fenceposts(Some(&zero), Some(&zero), 5), Ok((0, 1)));
}

#[test]
fn the_new_replica_set_grows_within_the_surge() {
    let rolling = Strategy::RollingUpdate {
        max_surge: 1,
        max_unavailable: 0,
    };
    // 2 old Pods, surge 1: the new ReplicaSet may have 1.
    assert_eq!(new_replica_set_size(rolling, 2, 2, 0), 1);
    // Already at 3 of max 3: no growth.
    assert_eq!(new_replica_set_size(rolling, 2, 3, 1), 1);
    // Old ones gone: the new one reaches the full count, never more.
    assert_eq!(new_replica_set_size(rolling, 2, 1, 1), 2);
    assert_eq!(new_replica_set_size(Strategy::Recreate, 5, 0, 0), 5);
}

#[test]
fn old_replica_sets_shrink_within_max_unavailable() {
    // replicas 2, maxUnavailable 0, old 2 + new 1 (not available yet):
    // nothing may go.
    assert_eq!(old_scale_down_budget(3, 2, 0, 1), 0);
    // The new Pod became available: one old Pod may go.
    assert_eq!(old_scale_down_budget(3, 2, 0, 0), 1);
    assert_eq!(
        Strategy::RollingUpdate {
            max_surge: 1,
            max_unavailable: 3
        }
        .max_unavailable(2),
        2
    );
    assert_eq!(Strategy::Recreate.max_unavailable(2), 0);
}

#[test]
fn scaling_is_shared_in_proportion() {
    // 10 -> 20 replicas (max 13 -> 25), two ReplicaSets of 8 and 5.
    let first = proportion(8, Some(13), 20, 25, 13, 12, 0);
    let second = proportion(5, Some(13), 20, 25, 13, 12, first);
    assert_eq!((first, second), (7, 5));
    // Scaling to zero takes everything.
    assert_eq!(proportion(8, Some(13), 0, 0, 13, -13, 0), -8);
    // Never more than is left to hand out.
    assert_eq!(proportion(8, Some(13), 20, 25, 13, 3, 0), 3);
}

#[test]
fn conditions_keep_their_transition_time() {
    let mut status = DeploymentStatus::default();
    let mut first = new_condition(cond::AVAILABLE, "True", "A", "m".into());
    first.last_transition_time = Some(Time(Timestamp::UNIX_EPOCH));
    set_condition(&mut status, first);
    set_condition(
        &mut status,
        new_condition(cond::AVAILABLE, "True", "B", "m".into()),
    );
    let c = get_condition(&status, cond::AVAILABLE).unwrap();
    assert_eq!(c.reason.as_deref(), Some("B"));
    assert_eq!(c.last_transition_time, Some(Time(Timestamp::UNIX_EPOCH)));
    assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
}
