//! Workload validation: Deployments, ReplicaSets, DaemonSets, StatefulSets
//! (`pkg/apis/apps/validation`).
//!
//! A workload finds its Pods by label selector and creates them from its
//! template, so the one rule that matters most is that the template's
//! labels match the selector: otherwise the controller would create Pods it
//! cannot see, forever. For the same reason the selector of an `apps/v1`
//! workload cannot change after creation; a different selector means a
//! different workload.

use std::collections::BTreeMap;

use api::k8s::apimachinery::pkg::apis::meta::v1 as meta;
use api::selector::LabelSelector;
use serde_json::Value;

use super::meta::{render_label_selector, validate_label_selector};
use super::pod::validate_pod_template;
use super::{child, int_field, quote, render, str_field, validate_nonnegative, IMMUTABLE_MSG};
use crate::status::FieldError;

/// What `kind` a rule names in its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
}

pub(crate) fn validate_deployment(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    validate_nonnegative(spec, "replicas", "spec", errs);
    validate_selector_and_template(spec, Workload::Deployment, errs);
    validate_deployment_strategy(&spec["strategy"], errs);
    validate_nonnegative(spec, "minReadySeconds", "spec", errs);
    validate_nonnegative(spec, "revisionHistoryLimit", "spec", errs);
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        validate_nonnegative(spec, "progressDeadlineSeconds", "spec", errs);
        if deadline <= int_field(spec, "minReadySeconds") {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    validate_selector_update(obj, old, errs);
}

pub(crate) fn validate_replicaset(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    validate_nonnegative(spec, "replicas", "spec", errs);
    validate_nonnegative(spec, "minReadySeconds", "spec", errs);
    validate_selector_and_template(spec, Workload::ReplicaSet, errs);
    validate_selector_update(obj, old, errs);
}

pub(crate) fn validate_daemonset(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    validate_selector_and_template(spec, Workload::DaemonSet, errs);
    validate_nonnegative(spec, "minReadySeconds", "spec", errs);
    validate_daemonset_update_strategy(&spec["updateStrategy"], errs);
    validate_nonnegative(spec, "revisionHistoryLimit", "spec", errs);
    validate_selector_update(obj, old, errs);
}

/// `ValidateControllerRevision`: a template version, which never changes.
pub(crate) fn validate_controller_revision(
    obj: &Value,
    old: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    if obj.get("data").is_none_or(Value::is_null) {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    validate_nonnegative(obj, "revision", "", errs);
    if let Some(old) = old {
        if obj.get("data") != old.get("data") {
            errs.push(FieldError::invalid(
                "data",
                render(obj.get("data")),
                IMMUTABLE_MSG,
            ));
        }
    }
}

/// `ValidateStatefulSet`: what every workload is, and a pod management
/// policy, an update strategy, a partition; after creation, only the
/// replicas, template, update strategy and a few knobs may change.
pub(crate) fn validate_statefulset(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    match str_field(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            quote(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = &spec["updateStrategy"];
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match str_field(strategy, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(rolling) = rolling {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    render(Some(rolling)),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = rolling {
                validate_nonnegative(
                    rolling,
                    "partition",
                    "spec.updateStrategy.rollingUpdate",
                    errs,
                );
            }
        }
        _ => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            render(Some(strategy)),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    validate_nonnegative(spec, "replicas", "spec", errs);
    validate_nonnegative(spec, "minReadySeconds", "spec", errs);
    validate_nonnegative(spec, "revisionHistoryLimit", "spec", errs);
    if let Some(ordinals) = spec.get("ordinals").filter(|o| !o.is_null()) {
        validate_nonnegative(ordinals, "start", "spec.ordinals", errs);
    }
    // Each Pod would need a PersistentVolumeClaim, and kube-lite has no
    // storage to bind one to: say so rather than leave Pods Pending.
    if !super::list(spec, "volumeClaimTemplates").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.volumeClaimTemplates",
            "kube-lite has no persistent volumes yet: use a StatefulSet without volumeClaimTemplates (an emptyDir keeps data for the life of each Pod)",
        ));
    }
    validate_selector_and_template(spec, Workload::StatefulSet, errs);
    if let Some(old) = old {
        validate_statefulset_update(spec, &old["spec"], errs);
    }
}

/// `ValidateStatefulSetUpdate`: the rest of the spec is fixed at creation.
fn validate_statefulset_update(spec: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    const MUTABLE: &[&str] = &[
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let without_mutable = |spec: &Value| -> Value {
        let mut rest = spec.clone();
        if let Some(map) = rest.as_object_mut() {
            map.retain(|k, v| !MUTABLE.contains(&k.as_str()) && !v.is_null());
        }
        rest
    };
    if without_mutable(spec) != without_mutable(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// The selector is well-formed and not empty, the template's labels match
/// it, and the template is a valid pod template that restarts its Pods.
fn validate_selector_and_template(spec: &Value, workload: Workload, errs: &mut Vec<FieldError>) {
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let kind = match workload {
        Workload::DaemonSet => "daemonset",
        Workload::StatefulSet => "statefulset",
        // (sic: upstream says "deployment" for ReplicaSets too)
        Workload::Deployment | Workload::ReplicaSet => "deployment",
    };
    match selector {
        None if workload != Workload::DaemonSet => {
            errs.push(FieldError::required("spec.selector", ""));
        }
        None => {}
        Some(sel) => {
            validate_label_selector(sel, "spec.selector", errs);
            let empty = super::entries(sel, "matchLabels").is_empty()
                && super::list(sel, "matchExpressions").is_empty();
            if empty {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    render_label_selector(Some(sel)),
                    format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }

    let template = &spec["template"];
    let labels = template["metadata"].get("labels").filter(|l| !l.is_null());
    match selector_matches(selector, labels) {
        Ok(true) => {}
        Ok(false) => errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            render(labels),
            "`selector` does not match template `labels`",
        )),
        // A selector that cannot be built has been reported above; DaemonSets
        // do not say it twice, the others add upstream's short note.
        Err(()) if workload != Workload::DaemonSet => errs.push(FieldError::invalid(
            "spec.selector",
            render_label_selector(selector),
            "invalid label selector",
        )),
        Err(()) => {}
    }

    validate_pod_template(template, "spec.template", errs);
    let pod_spec = &template["spec"];
    let restart_policy = str_field(pod_spec, "restartPolicy");
    if restart_policy != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            quote(restart_policy),
            &["Always"],
        ));
    }
    if let Some(deadline) = pod_spec
        .get("activeDeadlineSeconds")
        .filter(|d| !d.is_null())
    {
        let owner = match workload {
            Workload::DaemonSet => "DaemonSet",
            Workload::StatefulSet => "StatefulSet",
            Workload::Deployment | Workload::ReplicaSet => "ReplicaSet",
        };
        errs.push(FieldError::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            render(Some(deadline)),
            format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

/// Whether `labels` satisfy the selector. No selector selects nothing; an
/// empty one everything. `Err` when the selector cannot be built.
pub(super) fn selector_matches(
    selector: Option<&Value>,
    labels: Option<&Value>,
) -> Result<bool, ()> {
    let Some(selector) = selector else {
        return Ok(false);
    };
    let parsed: meta::LabelSelector = serde_json::from_value(selector.clone()).map_err(|_| ())?;
    let selector = LabelSelector::from_k8s(&parsed).map_err(|_| ())?;
    if selector.is_empty() {
        return Ok(true);
    }
    let labels: BTreeMap<String, String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(selector.matches(&labels))
}

/// An `apps/v1` workload keeps its selector.
pub(super) fn validate_selector_update(
    obj: &Value,
    old: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    let Some(old) = old else {
        return;
    };
    let new_selector = obj["spec"].get("selector").filter(|s| !s.is_null());
    let old_selector = old["spec"].get("selector").filter(|s| !s.is_null());
    if new_selector != old_selector {
        errs.push(FieldError::invalid(
            "spec.selector",
            render_label_selector(new_selector),
            IMMUTABLE_MSG,
        ));
    }
}

/// `ValidateDeploymentStrategy`.
fn validate_deployment_strategy(strategy: &Value, errs: &mut Vec<FieldError>) {
    let path = "spec.strategy";
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match str_field(strategy, "type") {
        "Recreate" => {
            if rolling.is_some() {
                errs.push(FieldError::forbidden(
                    child(path, "rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match rolling {
            None => errs.push(FieldError::required(
                child(path, "rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(rolling) => {
                let rolling_path = child(path, "rollingUpdate");
                let unavailable = rolling.get("maxUnavailable");
                let surge = rolling.get("maxSurge");
                validate_int_or_percent(unavailable, &child(&rolling_path, "maxUnavailable"), errs);
                validate_int_or_percent(surge, &child(&rolling_path, "maxSurge"), errs);
                if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                    errs.push(FieldError::invalid(
                        child(&rolling_path, "maxUnavailable"),
                        render(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(
                    unavailable,
                    &child(&rolling_path, "maxUnavailable"),
                    errs,
                );
            }
        },
        _ => errs.push(FieldError::not_supported(
            path,
            render_internal_strategy(strategy),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

/// `ValidateDaemonSetUpdateStrategy`.
fn validate_daemonset_update_strategy(strategy: &Value, errs: &mut Vec<FieldError>) {
    let path = "spec.updateStrategy";
    match str_field(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let rolling_path = child(path, "rollingUpdate");
            let Some(rolling) = strategy.get("rollingUpdate").filter(|r| !r.is_null()) else {
                errs.push(FieldError::required(rolling_path, ""));
                return;
            };
            let unavailable = rolling.get("maxUnavailable");
            let surge = rolling.get("maxSurge");
            let unavailable_path = child(&rolling_path, "maxUnavailable");
            let surge_path = child(&rolling_path, "maxSurge");
            validate_int_or_percent(unavailable, &unavailable_path, errs);
            validate_int_or_percent(surge, &surge_path, errs);
            not_more_than_100_percent(unavailable, &unavailable_path, errs);
            not_more_than_100_percent(surge, &surge_path, errs);
            // A DaemonSet either replaces Pods in place (maxUnavailable) or
            // starts the new one first (maxSurge), never both.
            match (
                int_or_percent_value(unavailable) != 0,
                int_or_percent_value(surge) != 0,
            ) {
                (true, true) => errs.push(FieldError::invalid(
                    surge_path,
                    render(surge),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(FieldError::required(
                    unavailable_path,
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        _ => errs.push(FieldError::not_supported(
            path,
            render_internal_strategy(strategy),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

/// `ValidatePositiveIntOrPercent`: `3` or `25%`.
fn validate_int_or_percent(value: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match value {
        Some(Value::String(s)) => {
            let digits = s.strip_suffix('%').unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                errs.push(FieldError::invalid(
                    path,
                    quote(s),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
            }
        }
        Some(Value::Number(n)) => {
            if n.as_i64().is_some_and(|n| n < 0) {
                errs.push(FieldError::invalid(
                    path,
                    n.to_string(),
                    super::NEGATIVE_MSG,
                ));
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => errs.push(FieldError::invalid(
            path,
            render(Some(other)),
            "must be an integer or percentage (e.g '5%')",
        )),
    }
}

/// The number in `3` or `25%` (0 when unset or malformed).
fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(s)) => s.trim_end_matches('%').parse().unwrap_or(0),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    }
}

fn not_more_than_100_percent(value: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(Value::String(s)) = value {
        if s.ends_with('%') && int_or_percent_value(value) > 100 {
            errs.push(FieldError::invalid(
                path,
                quote(s),
                "must not be greater than 100%",
            ));
        }
    }
}

/// How upstream prints a whole (internal, untagged) strategy struct in an
/// unsupported-type message.
fn render_internal_strategy(strategy: &Value) -> String {
    let rolling = match strategy.get("rollingUpdate").filter(|r| !r.is_null()) {
        None => "null".to_string(),
        Some(r) => format!(
            "{{\"MaxUnavailable\":{},\"MaxSurge\":{}}}",
            render(r.get("maxUnavailable")),
            render(r.get("maxSurge"))
        ),
    };
    format!(
        "{{\"Type\":{},\"RollingUpdate\":{rolling}}}",
        quote(str_field(strategy, "type"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use api::resources::lookup;
    use serde_json::json;

    fn lesson_deployment() -> Value {
        let mut deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "ngx-dep", "namespace": "default" },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "ngx-dep" } },
                "template": {
                    "metadata": { "labels": { "app": "ngx-dep" } },
                    "spec": {
                        "volumes": [{ "name": "ngx-conf-vol", "configMap": { "name": "ngx-conf" } }],
                        "containers": [{
                            "image": "nginx:alpine", "name": "nginx",
                            "ports": [{ "containerPort": 80 }],
                            "volumeMounts": [{ "mountPath": "/etc/nginx/conf.d", "name": "ngx-conf-vol" }]
                        }]
                    }
                }
            }
        });
        apply_defaults(lookup("deploy").unwrap(), &mut deploy);
        deploy
    }

    fn messages(resource: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
        crate::validation::validate(lookup(resource).unwrap(), obj, old)
            .iter()
            .map(FieldError::message)
            .collect()
    }

    #[test]
    fn the_lesson_deployment_is_valid() {
        assert_eq!(
            messages("deploy", &lesson_deployment(), None),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_selector_must_match_the_template_labels() {
        let mut deploy = lesson_deployment();
        deploy["spec"]["template"]["metadata"]["labels"] = json!({ "app": "x" });
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.template.metadata.labels: Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn a_selector_is_required() {
        let mut deploy = lesson_deployment();
        deploy["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            messages("deploy", &deploy, None),
            vec![
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"app\":\"ngx-dep\"}: `selector` does not match template `labels`",
            ]
        );
        deploy["spec"]["selector"] = json!({});
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn match_expressions_are_understood() {
        let mut deploy = lesson_deployment();
        deploy["spec"]["selector"] = json!({ "matchExpressions": [
            { "key": "app", "operator": "In", "values": ["ngx-dep", "other"] }
        ] });
        assert!(messages("deploy", &deploy, None).is_empty());
    }

    #[test]
    fn replicas_may_not_be_negative() {
        let mut deploy = lesson_deployment();
        deploy["spec"]["replicas"] = json!(-1);
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn the_template_is_validated_as_a_pod_spec() {
        let mut deploy = lesson_deployment();
        deploy["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        deploy["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            messages("deploy", &deploy, None),
            vec![
                "spec.template.spec.containers[0].image: Required value",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn the_selector_is_immutable() {
        let old = lesson_deployment();
        let mut new = old.clone();
        new["spec"]["selector"] = json!({ "matchLabels": { "app": "y" } });
        new["spec"]["template"]["metadata"]["labels"] = json!({ "app": "y" });
        assert_eq!(
            messages("deploy", &new, Some(&old)),
            vec!["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"y\"}}: field is immutable"]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(messages("deploy", &scaled, Some(&old)).is_empty());
    }

    #[test]
    fn rolling_update_parameters_are_checked() {
        let mut deploy = lesson_deployment();
        deploy["spec"]["strategy"]["rollingUpdate"] =
            json!({ "maxSurge": 0, "maxUnavailable": "0%" });
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
        );
        deploy["spec"]["strategy"]["rollingUpdate"] =
            json!({ "maxSurge": "x%", "maxUnavailable": "150%" });
        assert_eq!(
            messages("deploy", &deploy, None),
            vec![
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x%\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
            ]
        );
        deploy["spec"]["strategy"] = json!({ "type": "Recreate", "rollingUpdate": {} });
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        deploy["spec"]["strategy"] = json!({ "type": "BlueGreen" });
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.strategy: Unsupported value: {\"Type\":\"BlueGreen\",\"RollingUpdate\":null}: supported values: \"Recreate\", \"RollingUpdate\""]
        );
    }

    #[test]
    fn progress_deadline_must_exceed_min_ready() {
        let mut deploy = lesson_deployment();
        deploy["spec"]["minReadySeconds"] = json!(600);
        assert_eq!(
            messages("deploy", &deploy, None),
            vec!["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
        );
    }

    #[test]
    fn replicasets_follow_the_same_rules() {
        let mut rs = lesson_deployment();
        rs["kind"] = json!("ReplicaSet");
        let spec = rs["spec"].as_object_mut().unwrap();
        for field in [
            "strategy",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
        ] {
            spec.remove(field);
        }
        assert!(messages("rs", &rs, None).is_empty());
        rs["spec"]["selector"] = json!({ "matchLabels": { "app": "other" } });
        assert_eq!(
            messages("rs", &rs, None),
            vec!["spec.template.metadata.labels: Invalid value: {\"app\":\"ngx-dep\"}: `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn daemonsets_roll_by_surge_or_by_unavailability() {
        let mut ds = lesson_deployment();
        ds["kind"] = json!("DaemonSet");
        let spec = ds["spec"].as_object_mut().unwrap();
        for field in ["strategy", "replicas", "progressDeadlineSeconds"] {
            spec.remove(field);
        }
        apply_defaults(lookup("ds").unwrap(), &mut ds);
        assert!(messages("ds", &ds, None).is_empty());
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!(1);
        assert_eq!(
            messages("ds", &ds, None),
            vec!["spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"]
        );
        ds["spec"]["selector"] = json!({});
        let got = messages("ds", &ds, None);
        assert!(
            got.contains(
                &"spec.selector: Invalid value: {}: empty selector is invalid for daemonset"
                    .to_string()
            ),
            "{got:?}"
        );
        assert!(ds["spec"].get("replicas").is_none());
    }

    fn statefulset() -> Value {
        let mut sts = lesson_deployment();
        sts["kind"] = json!("StatefulSet");
        let spec = sts["spec"].as_object_mut().unwrap();
        for field in ["strategy", "progressDeadlineSeconds"] {
            spec.remove(field);
        }
        spec.insert("serviceName".into(), json!("ngx"));
        apply_defaults(lookup("sts").unwrap(), &mut sts);
        sts
    }

    #[test]
    fn statefulsets_are_refused_volume_claim_templates_with_a_reason() {
        let mut sts = statefulset();
        assert!(messages("sts", &sts, None).is_empty());
        sts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}}]);
        let got = messages("sts", &sts, None);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with(
                "spec.volumeClaimTemplates: Forbidden: kube-lite has no persistent volumes yet"
            ),
            "{got:?}"
        );
    }

    #[test]
    fn statefulsets_name_their_policy_and_keep_their_service() {
        let mut sts = statefulset();
        sts["spec"]["podManagementPolicy"] = json!("Random");
        assert_eq!(
            messages("sts", &sts, None),
            vec!["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"]
        );
        let old = statefulset();
        let mut renamed = statefulset();
        renamed["spec"]["serviceName"] = json!("other");
        let got = messages("sts", &renamed, Some(&old));
        assert!(
            got[0].starts_with(
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
            ),
            "{got:?}"
        );
        let mut scaled = statefulset();
        scaled["spec"]["replicas"] = json!(5);
        assert!(messages("sts", &scaled, Some(&old)).is_empty());
    }
}
