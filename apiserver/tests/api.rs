//! The apiserver against real HTTP clients: CRUD of every resource, the
//! Service allocators under concurrency, durability across a crash, and the
//! bad-input matrix. Each test runs the real binary on its own port and
//! data directory.

mod common;

use std::collections::HashSet;

use common::{ApiServer, Client};
use serde_json::{json, Value};

fn start() -> (tempfile::TempDir, ApiServer, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let client = Client::new(&server.url);
    (dir, server, client)
}

/// One object per resource, with the URL of its collection.
fn samples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}}),
        ),
        (
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:alpine", "ports": [{"containerPort": 80}]}]}}),
        ),
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e1"}, "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "1"}}),
        ),
        (
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        ),
        (
            "/api/v1/namespaces/default/events",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"}, "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default"}, "reason": "Scheduled", "message": "hi", "type": "Normal"}),
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d1"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs1"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds1"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        ),
        (
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "es1"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.1.5"]}], "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
        ),
    ]
}

#[tokio::test]
async fn crud_for_every_resource() {
    let (_dir, _server, api) = start();
    for (collection, object) in samples() {
        let name = object["metadata"]["name"].as_str().unwrap();
        let item = format!("{collection}/{name}");

        let created = api.post(collection, &object).await;
        assert_eq!(created.code, 201, "create {item}: {}", created.body);
        assert!(
            created.body["metadata"]["uid"].is_string(),
            "{item} has a uid"
        );
        assert!(created.body["metadata"]["creationTimestamp"].is_string());
        let rv1: u64 = created.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();

        let again = api.post(collection, &object).await;
        assert_eq!(again.code, 409, "second create of {item}");
        assert_eq!(again.body["reason"], "AlreadyExists");

        let got = api.get(&item).await;
        assert_eq!(got.code, 200, "get {item}");
        assert_eq!(got.body["metadata"]["uid"], created.body["metadata"]["uid"]);

        let list = api.get(collection).await;
        assert_eq!(list.code, 200);
        assert!(list.body["kind"].as_str().unwrap().ends_with("List"));
        assert!(list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == name));

        // Update with the current resourceVersion, then with a stale one.
        let mut changed = got.body.clone();
        changed["metadata"]["labels"] = json!({"changed": "yes"});
        let updated = api.put(&item, &changed).await;
        assert_eq!(updated.code, 200, "update {item}: {}", updated.body);
        let rv2: u64 = updated.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv2 > rv1, "resourceVersion grows on update");
        let stale = api.put(&item, &changed).await;
        assert_eq!(stale.code, 409, "stale update of {item}");
        assert_eq!(stale.body["reason"], "Conflict");

        let patched = api
            .patch(
                &item,
                "application/merge-patch+json",
                &json!({"metadata": {"annotations": {"a": "b"}}}),
            )
            .await;
        assert_eq!(patched.code, 200, "patch {item}: {}", patched.body);
        assert_eq!(patched.body["metadata"]["annotations"]["a"], "b");
        assert_eq!(patched.body["metadata"]["labels"]["changed"], "yes");

        let deleted = api.delete(&item).await;
        assert_eq!(deleted.code, 200, "delete {item}: {}", deleted.body);
        if collection != "/api/v1/namespaces" {
            let gone = api.get(&item).await;
            assert_eq!(gone.code, 404, "{item} is gone");
            assert_eq!(gone.body["kind"], "Status");
            assert_eq!(gone.body["reason"], "NotFound");
        }
    }
    // The namespace is gone once it is empty.
    let mut gone = false;
    for _ in 0..100 {
        if api.get("/api/v1/namespaces/lab").await.code == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "a deleted empty namespace goes away");
}

#[tokio::test]
async fn system_namespaces_exist_and_stay() {
    let (_dir, _server, api) = start();
    let list = api.get("/api/v1/namespaces").await;
    let names: HashSet<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(ns), "{ns} exists");
    }
    let refused = api.delete("/api/v1/namespaces/default").await;
    assert_eq!(refused.code, 403);
}

#[tokio::test]
async fn services_get_kubernetes_defaults_and_allocations() {
    let (_dir, _server, api) = start();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ngx-svc"},
        "spec": {"type": "NodePort", "selector": {"app": "ngx-dep"}, "ports": [{"port": 80}]}});
    let created = api.post("/api/v1/namespaces/default/services", &svc).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let spec = &created.body["spec"];
    let ip: std::net::Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
    assert_eq!(ip.octets()[0], 10);
    assert!((96..112).contains(&ip.octets()[1]), "{ip} in 10.96.0.0/12");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 80);
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    let node_port = spec["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port));

    // Applying the same Service without clusterIP/nodePort keeps them.
    let mut again = svc.clone();
    again["metadata"]["resourceVersion"] = created.body["metadata"]["resourceVersion"].clone();
    let updated = api
        .put("/api/v1/namespaces/default/services/ngx-svc", &again)
        .await;
    assert_eq!(updated.code, 200, "{}", updated.body);
    assert_eq!(updated.body["spec"]["clusterIP"], spec["clusterIP"]);
    assert_eq!(updated.body["spec"]["ports"][0]["nodePort"], node_port);

    // Changing the ClusterIP is refused with the field named.
    let moved = api
        .patch(
            "/api/v1/namespaces/default/services/ngx-svc",
            "application/merge-patch+json",
            &json!({"spec": {"clusterIP": "10.96.0.99", "clusterIPs": ["10.96.0.99"]}}),
        )
        .await;
    assert_eq!(moved.code, 422, "{}", moved.body);
    assert!(
        moved.body["message"]
            .as_str()
            .unwrap()
            .contains("spec.clusterIP"),
        "{}",
        moved.body
    );

    // Taking its NodePort elsewhere is refused; after delete it is free.
    let clash = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]}});
    let refused = api
        .post("/api/v1/namespaces/default/services", &clash)
        .await;
    assert_eq!(refused.code, 422, "{}", refused.body);
    assert_eq!(
        refused.body["details"]["causes"][0]["field"],
        "spec.ports[0].nodePort"
    );
    assert_eq!(
        api.delete("/api/v1/namespaces/default/services/ngx-svc")
            .await
            .code,
        200
    );
    let reused = api
        .post("/api/v1/namespaces/default/services", &clash)
        .await;
    assert_eq!(
        reused.code, 201,
        "a freed NodePort can be taken: {}",
        reused.body
    );
}

#[tokio::test]
async fn concurrent_service_creates_get_distinct_ips_and_ports() {
    let (_dir, _server, api) = start();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}")},
                "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
            api.post("/api/v1/namespaces/default/services", &svc).await
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let answer = t.await.unwrap();
        assert_eq!(answer.code, 201, "{}", answer.body);
        ips.insert(
            answer.body["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        ports.insert(
            answer.body["spec"]["ports"][0]["nodePort"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(ips.len(), 200, "every Service got its own ClusterIP");
    assert_eq!(ports.len(), 200, "every Service got its own NodePort");
}

#[tokio::test]
async fn a_crash_keeps_every_acknowledged_object_and_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let api = Client::new(&server.url);
    let mut expected = Vec::new();
    for i in 0..50 {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")},
            "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let a = api.post("/api/v1/namespaces/default/services", &svc).await;
        assert_eq!(a.code, 201);
        expected.push(a.body);
    }
    let cm = api
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
        )
        .await;
    assert_eq!(cm.code, 201);
    let last_rv: u64 = cm.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    server.crash();

    let server = ApiServer::start(dir.path());
    let api = Client::new(&server.url);
    for before in &expected {
        let name = before["metadata"]["name"].as_str().unwrap();
        let after = api
            .get(&format!("/api/v1/namespaces/default/services/{name}"))
            .await;
        assert_eq!(after.code, 200, "{name} survived the crash");
        assert_eq!(after.body, *before, "{name} is unchanged");
    }
    // The allocators remember: a Service asking for a taken NodePort is
    // refused, and new objects get newer resourceVersions.
    let taken = expected[0]["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .unwrap();
    let clash = json!({"metadata": {"name": "clash"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": taken}]}});
    assert_eq!(
        api.post("/api/v1/namespaces/default/services", &clash)
            .await
            .code,
        422
    );
    let next = api
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": "d"}}),
        )
        .await;
    let next_rv: u64 = next.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next_rv > last_rv,
        "resourceVersion keeps growing after restart"
    );
}

#[tokio::test]
async fn bad_inputs_get_the_right_status() {
    let (_dir, _server, api) = start();
    let svcs = "/api/v1/namespaces/default/services";
    let good = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ok"}, "spec": {"ports": [{"port": 80}]}});
    assert_eq!(api.post(svcs, &good).await.code, 201);

    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        ("malformed JSON", api.send("POST", svcs, "application/json", Some(b"{\"metadata\": ".to_vec())).await, 400, "BadRequest"),
        ("malformed YAML", api.send("POST", svcs, "application/yaml", Some(b"metadata: [unclosed".to_vec())).await, 400, "BadRequest"),
        ("unknown kind", api.get("/api/v1/namespaces/default/widgets").await, 404, "NotFound"),
        ("unknown field under Strict", api.send("POST", &format!("{svcs}?fieldValidation=Strict"), "application/json",
            Some(serde_json::to_vec(&json!({"metadata": {"name": "x"}, "spec": {"bogus": 1, "ports": [{"port": 80}]}})).unwrap())).await, 400, "BadRequest"),
        ("invalid name", api.post(svcs, &json!({"metadata": {"name": "Bad_Name"}, "spec": {"ports": [{"port": 80}]}})).await, 422, "Invalid"),
        ("port out of range", api.post(svcs, &json!({"metadata": {"name": "p"}, "spec": {"ports": [{"port": 70000}]}})).await, 422, "Invalid"),
        ("duplicate ports", api.post(svcs, &json!({"metadata": {"name": "d"}, "spec": {"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}})).await, 422, "Invalid"),
        ("nodePort out of range", api.post(svcs, &json!({"metadata": {"name": "n"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}})).await, 422, "Invalid"),
        ("clusterIP outside range", api.post(svcs, &json!({"metadata": {"name": "c"}, "spec": {"clusterIP": "192.168.1.1", "ports": [{"port": 80}]}})).await, 422, "Invalid"),
        ("oversized body", api.send("POST", svcs, "application/json", Some(vec![b' '; 4 * 1024 * 1024])).await, 413, "RequestEntityTooLarge"),
        ("missing namespace", api.post("/api/v1/namespaces/nope/services", &good).await, 404, "NotFound"),
        ("wrong kind in body", api.post(svcs, &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"}})).await, 400, "BadRequest"),
        ("bad label selector", api.get(&format!("{svcs}?labelSelector=a%20in%20(")).await, 400, "BadRequest"),
        ("unsupported field selector", api.get(&format!("{svcs}?fieldSelector=spec.bogus%3Dx")).await, 400, "BadRequest"),
        ("unsupported patch type", api.send("PATCH", &format!("{svcs}/ok"), "text/plain", Some(b"{}".to_vec())).await, 415, "UnsupportedMediaType"),
        ("pod without containers", api.post("/api/v1/namespaces/default/pods", &json!({"metadata": {"name": "p"}, "spec": {"containers": []}})).await, 422, "Invalid"),
        ("deployment selector mismatch", api.post("/apis/apps/v1/namespaces/default/deployments", &json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})).await, 422, "Invalid"),
    ];
    for (what, answer, code, reason) in cases {
        assert_eq!(answer.code, code, "{what}: {}", answer.body);
        assert_eq!(
            answer.body["kind"], "Status",
            "{what} answers a Status: {}",
            answer.body
        );
        assert_eq!(answer.body["reason"], reason, "{what}: {}", answer.body);
        assert!(
            !answer.body["message"].as_str().unwrap_or("").is_empty(),
            "{what} explains itself"
        );
    }

    // Stale resourceVersion on update.
    let current = api.get(&format!("{svcs}/ok")).await.body;
    let mut stale = current.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let answer = api.put(&format!("{svcs}/ok"), &stale).await;
    assert_eq!(answer.code, 409);
    assert_eq!(answer.body["reason"], "Conflict");

    // Field paths are named in Invalid answers.
    let bad_port = api
        .post(
            svcs,
            &json!({"metadata": {"name": "p"}, "spec": {"ports": [{"port": 0}]}}),
        )
        .await;
    assert_eq!(
        bad_port.body["details"]["causes"][0]["field"],
        "spec.ports[0].port"
    );
    // Nothing was stored by any refused request.
    let list = api.get(svcs).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

use common::Answer;

#[tokio::test]
async fn tables_pagination_selectors_and_subresources() {
    let (_dir, _server, api) = start();
    for i in 0..5 {
        let svc = json!({"metadata": {"name": format!("s{i}"), "labels": {"i": i.to_string()}}, "spec": {"ports": [{"port": 80}]}});
        assert_eq!(
            api.post("/api/v1/namespaces/default/services", &svc)
                .await
                .code,
            201
        );
    }
    // Table, as kubectl asks for it.
    let table = api
        .http
        .get(format!("{}/api/v1/namespaces/default/services", api.base))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &columns[..6],
        &[
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age"
        ]
    );
    assert_eq!(table["rows"].as_array().unwrap().len(), 5);
    assert_eq!(table["rows"][0]["cells"][4], "80/TCP");

    // limit/continue walks all five without repeats.
    let mut names = Vec::new();
    let mut next = String::from("/api/v1/namespaces/default/services?limit=2");
    loop {
        let page = api.get(&next).await.body;
        for item in page["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => {
                next = format!("/api/v1/namespaces/default/services?limit=2&continue={c}")
            }
            _ => break,
        }
    }
    assert_eq!(names, vec!["s0", "s1", "s2", "s3", "s4"]);

    let selected = api
        .get("/api/v1/namespaces/default/services?labelSelector=i%20in%20(1,3)")
        .await
        .body;
    assert_eq!(selected["items"].as_array().unwrap().len(), 2);
    let by_name = api
        .get("/api/v1/services?fieldSelector=metadata.name%3Ds4")
        .await
        .body;
    assert_eq!(by_name["items"].as_array().unwrap().len(), 1);

    // Deployment scale subresource, and status ignoring spec changes.
    let dep = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let created = api
        .post("/apis/apps/v1/namespaces/default/deployments", &dep)
        .await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["metadata"]["generation"], 1);
    let scale = api
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d/scale",
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(scale.code, 200, "{}", scale.body);
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["spec"]["replicas"], 5);
    assert_eq!(scale.body["status"]["selector"], "app=d");
    let d = api
        .get("/apis/apps/v1/namespaces/default/deployments/d")
        .await
        .body;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);

    let status = api
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d/status",
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 9}, "status": {"replicas": 5, "observedGeneration": 2}}),
        )
        .await;
    assert_eq!(status.code, 200, "{}", status.body);
    assert_eq!(status.body["status"]["replicas"], 5);
    assert_eq!(
        status.body["spec"]["replicas"], 5,
        "status writes ignore spec"
    );
    let spec_write = api
        .patch(
            "/apis/apps/v1/namespaces/default/deployments/d",
            "application/merge-patch+json",
            &json!({"status": {"replicas": 0}}),
        )
        .await;
    assert_eq!(
        spec_write.body["status"]["replicas"], 5,
        "spec writes ignore status"
    );

    // Binding a Pod sets its node once.
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    assert_eq!(
        api.post("/api/v1/namespaces/default/pods", &pod).await.code,
        201
    );
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    assert_eq!(
        api.post("/api/v1/namespaces/default/pods/p/binding", &binding)
            .await
            .code,
        201
    );
    let bound = api.get("/api/v1/namespaces/default/pods/p").await.body;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    let scheduled = bound["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        .cloned();
    assert_eq!(
        scheduled.unwrap()["status"],
        "True",
        "a bound Pod reports PodScheduled"
    );
    assert_eq!(
        api.post("/api/v1/namespaces/default/pods/p/binding", &binding)
            .await
            .code,
        409
    );
    let by_node = api
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        .await
        .body;
    assert_eq!(by_node["items"].as_array().unwrap().len(), 1);

    // generateName.
    let generated = api
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"generateName": "cfg-"}}),
        )
        .await;
    assert_eq!(generated.code, 201);
    let name = generated.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
}

#[tokio::test]
async fn orphan_and_foreground_deletes_wait_for_the_garbage_collector() {
    let (_dir, _server, api) = start();
    let cm = |name: &str| json!({"metadata": {"name": name}});
    let cms = "/api/v1/namespaces/default/configmaps";
    for (name, policy, finalizer) in [
        ("o", "Orphan", "orphan"),
        ("f", "Foreground", "foregroundDeletion"),
    ] {
        assert_eq!(api.post(cms, &cm(name)).await.code, 201);
        let body = serde_json::to_vec(&json!({"propagationPolicy": policy})).unwrap();
        let answer = api
            .send(
                "DELETE",
                &format!("{cms}/{name}"),
                "application/json",
                Some(body),
            )
            .await;
        assert_eq!(answer.code, 200, "{}", answer.body);
        let held = api.get(&format!("{cms}/{name}")).await;
        assert_eq!(
            held.code, 200,
            "{policy}: the object stays until its finalizer is removed"
        );
        assert_eq!(held.body["metadata"]["finalizers"], json!([finalizer]));
        assert!(held.body["metadata"]["deletionTimestamp"].is_string());
        // What the garbage collector does when it is done with the dependents.
        let done = api
            .patch(
                &format!("{cms}/{name}"),
                "application/merge-patch+json",
                &json!({"metadata": {"finalizers": null}}),
            )
            .await;
        assert_eq!(done.code, 200, "{}", done.body);
        assert_eq!(
            api.get(&format!("{cms}/{name}")).await.code,
            404,
            "{policy}: gone with its last finalizer"
        );
    }
    let bad = serde_json::to_vec(&json!({"propagationPolicy": "Sideways"})).unwrap();
    assert_eq!(api.post(cms, &cm("x")).await.code, 201);
    assert_eq!(
        api.send("DELETE", &format!("{cms}/x"), "application/json", Some(bad))
            .await
            .code,
        400
    );
}
