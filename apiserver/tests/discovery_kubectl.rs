//! The real kubectl (v1.35) against kube-lite's discovery and OpenAPI.
//!
//! A server with only the discovery and OpenAPI routes is enough for
//! kubectl to resolve resource names (`api-resources`, `api-versions`),
//! check the server version, and prepare `kubectl apply`: with its default
//! `--validate=strict`, apply first reads OpenAPI v3 to learn that the
//! server validates fields itself. Objects are not served here: apply's GET
//! is answered 404 and `--dry-run=client` stops there, except for one
//! stand-in Deployment that shows which patch kubectl computes with our
//! OpenAPI.
//!
//! kubectl is taken from `$KUBECTL`, or `<workspace>/.tools/kubectl`, which
//! is installed with the `get-kubectl` script when missing. The test fails
//! when kubectl cannot be found or installed.

mod common;

use common::kubectl;
use std::process::Output;
use std::sync::{Arc, Mutex};

use apiserver::{discovery, openapi};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request kubectl sent: path with query, and Accept header.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    accept: String,
}

impl Seen {
    /// The path without its query (kubectl adds `?timeout=32s`).
    fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

type RequestLog = Arc<Mutex<Vec<Seen>>>;

async fn record(State(log): State<RequestLog>, req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    log.lock().unwrap().push(Seen { path, accept });
    next.run(req).await
}

/// Makes the server look like one without aggregated discovery: every
/// request asks for plain JSON.
async fn plain_json_only(mut req: Request, next: Next) -> Response {
    req.headers_mut()
        .insert(header::ACCEPT, "application/json".parse().unwrap());
    next.run(req).await
}

/// Which discovery the server under test offers.
#[derive(Clone, Copy, PartialEq)]
enum Offer {
    Aggregated,
    LegacyOnly,
}

/// Serves discovery, OpenAPI and the given stand-in `objects` routes on
/// 127.0.0.1:<random>; everything else is a 404 Status, as kube-apiserver
/// answers unknown URLs.
async fn serve(offer: Offer, objects: Router) -> (String, RequestLog) {
    let log: RequestLog = Arc::default();
    let mut app = objects
        .merge(discovery::routes())
        .merge(openapi::routes())
        .fallback(|req: Request| async move {
            apiserver::status::StatusError::no_route(req.uri().path()).into_response()
        });
    if offer == Offer::LegacyOnly {
        app = app.layer(middleware::from_fn(plain_json_only));
    }
    // Outermost, so it logs what kubectl really sent.
    let app = app.layer(middleware::from_fn_with_state(log.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

async fn run_kubectl(server: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("config");
    std::fs::write(&kubeconfig, "").unwrap();
    let output = tokio::process::Command::new(kubectl())
        .arg("--server")
        .arg(server)
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", home.path())
        .output()
        .await
        .expect("running kubectl");
    eprintln!(
        "$ kubectl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_version_sees_a_1_35_server_without_skew_warning() {
    let (server, _) = serve(Offer::Aggregated, Router::new()).await;
    let out = run_kubectl(&server, &["version", "-o", "json"]).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "35");
    assert_eq!(v["serverVersion"]["gitVersion"], discovery::GIT_VERSION);

    let out = run_kubectl(&server, &["version"]).await;
    assert!(out.status.success());
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains(&format!("Server Version: {}", discovery::GIT_VERSION)));
    assert!(!all.contains("WARNING"), "{all}");
}

/// Runs `kubectl api-resources -o wide` and checks that it lists exactly the
/// table, each resource with its short names, group/version, scope, kind,
/// verbs and categories.
async fn assert_api_resources_match_the_table(server: &str) {
    let out = run_kubectl(server, &["api-resources", "-o", "wide"]).await;
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // NAME SHORTNAMES APIVERSION NAMESPACED KIND VERBS CATEGORIES
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), api::resources::RESOURCES.len(), "{stdout}");
    for r in api::resources::RESOURCES {
        let row = rows
            .iter()
            .find(|row| row[0] == r.plural)
            .unwrap_or_else(|| panic!("{} missing:\n{stdout}", r.plural));
        let mut expected = vec![r.plural.to_string()];
        if !r.short_names.is_empty() {
            expected.push(r.short_names.join(","));
        }
        expected.push(r.api_version());
        expected.push(r.namespaced.to_string());
        expected.push(r.kind.to_string());
        let mut verbs: Vec<&str> = r.verbs.to_vec();
        verbs.sort_unstable();
        expected.push(verbs.join(","));
        if !r.categories.is_empty() {
            expected.push(r.categories.join(","));
        }
        assert_eq!(row.join(" "), expected.join(" "));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_discovers_every_resource_through_aggregated_discovery() {
    let (server, log) = serve(Offer::Aggregated, Router::new()).await;
    assert_api_resources_match_the_table(&server).await;
    // One request per root, none per group/version.
    let seen = log.lock().unwrap().clone();
    let apis = seen.iter().find(|s| s.path_only() == "/apis").unwrap();
    assert!(
        apis.accept
            .starts_with(discovery::AGGREGATED_DISCOVERY_CONTENT_TYPE),
        "{}",
        apis.accept
    );
    assert!(
        !seen.iter().any(|s| s.path_only().starts_with("/apis/")),
        "{seen:?}"
    );

    let out = run_kubectl(&server, &["api-versions"]).await;
    assert!(out.status.success());
    let versions: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let mut expected: Vec<String> = discovery::group_versions()
        .into_iter()
        .map(|(g, v)| {
            if g.is_empty() {
                v.to_string()
            } else {
                format!("{g}/{v}")
            }
        })
        .collect();
    expected.sort();
    assert_eq!(versions, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_discovers_every_resource_through_legacy_discovery() {
    let (server, log) = serve(Offer::LegacyOnly, Router::new()).await;
    assert_api_resources_match_the_table(&server).await;
    // APIVersions and APIGroupList, then one APIResourceList per
    // group/version.
    let seen = log.lock().unwrap().clone();
    for (group, version) in discovery::group_versions() {
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        assert!(
            seen.iter().any(|s| s.path_only() == path),
            "{path}: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_resolves_short_names_through_discovery() {
    let (server, _) = serve(Offer::Aggregated, Router::new()).await;
    // `explain` is answered from OpenAPI v3 after resolving `svc`.
    let out = run_kubectl(&server, &["explain", "svc"]).await;
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("KIND:       Service"), "{stdout}");
    let out = run_kubectl(&server, &["explain", "deploy"]).await;
    assert!(text(&out.stdout).contains("GROUP:      apps"));
    let out = run_kubectl(&server, &["explain", "widgets"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("doesn't have a resource type \"widgets\""));
}

/// The lesson's manifests, the repo's copy in examples/lesson/.
const ALL_IN_ONE: &str = include_str!("../../examples/lesson/all-in-one.yml");

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_leaves_field_validation_to_the_server() {
    let (server, log) = serve(Offer::Aggregated, Router::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("all-in-one.yml");
    std::fs::write(&manifest, ALL_IN_ONE).unwrap();
    let out = run_kubectl(
        &server,
        &[
            "apply",
            "-f",
            manifest.to_str().unwrap(),
            "--dry-run=client",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for created in [
        "configmap/ngx-conf created (dry run)",
        "deployment.apps/ngx-dep created (dry run)",
        "service/ngx-svc created (dry run)",
    ] {
        assert!(stdout.contains(created), "{stdout}");
    }
    // No "failed to download openapi ... --validate=false", no warnings.
    assert!(stderr.is_empty(), "{stderr}");
    // kubectl read the index and the documents of both group/versions.
    let seen = log.lock().unwrap().clone();
    let fetched = |prefix: &str| seen.iter().any(|s| s.path.starts_with(prefix));
    assert!(fetched("/openapi/v3"), "{seen:?}");
    assert!(fetched("/openapi/v3/api/v1?hash="), "{seen:?}");
    assert!(fetched("/openapi/v3/apis/apps/v1?hash="), "{seen:?}");
    assert!(fetched("/api/v1/namespaces/default/services/ngx-svc"));
}

/// What kubectl sent to the stand-in Deployment.
#[derive(Debug, Default, Clone)]
struct PatchSeen {
    content_type: String,
    query: String,
    body: String,
}

/// The Deployment as `kubectl apply` left it last time: one container.
fn applied_deployment() -> serde_json::Value {
    let last_applied = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "ngx-dep", "namespace": "default" },
        "spec": {
            "selector": { "matchLabels": { "app": "ngx-dep" } },
            "template": {
                "metadata": { "labels": { "app": "ngx-dep" } },
                "spec": { "containers": [ { "name": "nginx", "image": "nginx:alpine" } ] }
            }
        }
    });
    let mut current = last_applied.clone();
    current["metadata"]["annotations"] = serde_json::json!({
        "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string(),
    });
    current["metadata"]["resourceVersion"] = "7".into();
    current["metadata"]["uid"] = "4b1f6a52-0000-4000-8000-000000000001".into();
    current
}

/// Our OpenAPI schemas carry no merge keys and advertise no strategic merge
/// patch, so kubectl must fall back to the merge keys compiled into it:
/// containers are merged by `name` (`$setElementOrder/containers`), not
/// replaced as a whole. And it must ask the server to validate fields.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_patches_with_its_builtin_merge_keys_and_strict_validation() {
    use axum::routing::get;

    let seen: Arc<Mutex<Option<PatchSeen>>> = Arc::default();
    let captured = seen.clone();
    let objects = Router::new().route(
        "/apis/apps/v1/namespaces/default/deployments/ngx-dep",
        get(|| async { axum::Json(applied_deployment()) }).patch(move |req: Request| async move {
            let content_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            *captured.lock().unwrap() = Some(PatchSeen {
                content_type,
                query,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            // A real server would apply the patch; the test only needs
            // a well-formed answer.
            axum::Json(applied_deployment())
        }),
    );
    let (server, _) = serve(Offer::Aggregated, objects).await;

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("ngx-dep.yml");
    std::fs::write(
        &manifest,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ngx-dep
spec:
  selector:
    matchLabels:
      app: ngx-dep
  template:
    metadata:
      labels:
        app: ngx-dep
    spec:
      containers:
      - name: nginx
        image: nginx:1.27-alpine
      - name: sidecar
        image: busybox
"#,
    )
    .unwrap();
    let out = run_kubectl(&server, &["apply", "-f", manifest.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("deployment.apps/ngx-dep configured"));

    let patch = seen.lock().unwrap().clone().expect("kubectl sent no PATCH");
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert!(
        patch.query.contains("fieldValidation=Strict"),
        "{}",
        patch.query
    );
    let body: serde_json::Value = serde_json::from_str(&patch.body).unwrap();
    let pod_spec = &body["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["$setElementOrder/containers"],
        serde_json::json!([{ "name": "nginx" }, { "name": "sidecar" }]),
        "{}",
        patch.body
    );
}
