//! The describe pages, line for line against what kubectl prints.

use super::*;

fn now() -> DateTime<Utc> {
    "2026-11-25T10:00:00Z".parse().unwrap()
}

/// The lesson's ClusterIP Service as the API server stores it.
fn ngx_svc() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ngx-svc", "namespace": "default", "uid": "u1",
            "annotations": {LAST_APPLIED: "{\"apiVersion\":\"v1\"}\n"}},
        "spec": {"clusterIP": "10.96.240.115", "clusterIPs": ["10.96.240.115"],
            "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "selector": {"app": "ngx-dep"}, "sessionAffinity": "None", "type": "ClusterIP"},
        "status": {"loadBalancer": {}}
    })
}

fn slice(addresses: &[(&str, Option<bool>)], port_name: &str, port: i64) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|(ip, ready)| match ready {
            Some(r) => json!({"addresses": [ip], "conditions": {"ready": r}}),
            None => json!({"addresses": [ip]}),
        })
        .collect();
    json!({"addressType": "IPv4", "endpoints": endpoints,
               "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]})
}

#[test]
fn service_without_pods_has_no_endpoints() {
    // Verified against kubectl 1.35.2 describing the same object.
    assert_eq!(
        describe_service(&ngx_svc(), &[], &[], now()),
        "Name:                     ngx-svc
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=ngx-dep
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.240.115
IPs:                      10.96.240.115
Port:                     <unset>  80/TCP
TargetPort:               80/TCP
Endpoints:                <none>
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"
    );
}

#[test]
fn nodeport_service_lists_ready_endpoints_and_events() {
    let mut svc = ngx_svc();
    svc["spec"]["type"] = json!("NodePort");
    svc["spec"]["externalTrafficPolicy"] = json!("Cluster");
    svc["spec"]["ports"][0]["nodePort"] = json!(30651);
    let slices = [slice(
        &[
            ("10.244.1.5", Some(true)),
            ("10.244.2.3", None),
            ("10.244.2.9", Some(false)),
        ],
        "",
        80,
    )];
    let events = [json!({
        "type": "Normal", "reason": "Type", "message": "ClusterIP -> NodePort ",
        "source": {"component": "service-controller"}, "count": 2,
        "firstTimestamp": "2026-11-25T09:00:00Z", "lastTimestamp": "2026-11-25T09:55:00Z"
    })];
    let page = describe_service(&svc, &slices, &events, now());
    let lines: Vec<&str> = page.lines().collect();
    assert!(lines.contains(&"Type:                     NodePort"));
    assert!(lines.contains(&"NodePort:                 <unset>  30651/TCP"));
    assert!(lines.contains(&"Endpoints:                10.244.1.5:80,10.244.2.3:80"));
    assert!(lines.contains(&"External Traffic Policy:  Cluster"));
    assert!(page.ends_with(
            "Events:\n  Type    Reason  Age               From                Message\n  ----    ------  ----              ----                -------\n  Normal  Type    5m (x2 over 60m)  service-controller  ClusterIP -> NodePort\n"
        ), "{page}");
}

#[test]
fn endpoints_beyond_three_are_counted() {
    let ips: Vec<(String, Option<bool>)> =
        (1..=5).map(|i| (format!("10.244.1.{i}"), None)).collect();
    let ips: Vec<(&str, Option<bool>)> = ips.iter().map(|(ip, r)| (ip.as_str(), *r)).collect();
    assert_eq!(
        format_endpoint_slices(&[slice(&ips, "http", 8080)], "http"),
        "10.244.1.1:8080,10.244.1.2:8080,10.244.1.3:8080 + 2 more..."
    );
    // A port of another name contributes nothing.
    assert_eq!(format_endpoint_slices(&[slice(&ips, "http", 8080)], ""), "");
}

fn ngx_dep() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ngx-dep", "namespace": "default", "uid": "dep",
            "creationTimestamp": "2026-11-25T09:00:00Z", "generation": 1,
            "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "ngx-dep"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "ngx-dep"}}, "spec": {
                "containers": [{"name": "nginx", "image": "nginx:alpine",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "volumeMounts": [{"mountPath": "/etc/nginx/conf.d", "name": "ngx-conf-vol"}]}],
                "volumes": [{"name": "ngx-conf-vol", "configMap": {"name": "ngx-conf"}}]}}},
        "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 1,
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}
    })
}

#[test]
fn deployment_page_matches_kubectl() {
    let deploy = ngx_dep();
    let mut template = deploy["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!("6796688696");
    let rs = json!({"metadata": {"name": "ngx-dep-6796688696", "uid": "rs",
                "ownerReferences": [{"controller": true, "uid": "dep", "kind": "Deployment", "name": "ngx-dep"}]},
            "spec": {"replicas": 2, "template": template}, "status": {"replicas": 2}});
    let expected = format!(
        "Name:                   ngx-dep
Namespace:              default
CreationTimestamp:      {}
Labels:                 <none>
Annotations:            deployment.kubernetes.io/revision: 1
Selector:               app=ngx-dep
Replicas:               2 desired | 2 updated | 2 total | 1 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=ngx-dep
  Containers:
   nginx:
    Image:        nginx:alpine
    Port:         80/TCP
    Host Port:    0/TCP
    Environment:  <none>
    Mounts:
      /etc/nginx/conf.d from ngx-conf-vol (rw)
  Volumes:
   ngx-conf-vol:
    Type:          ConfigMap (a volume populated by a ConfigMap)
    Name:          ngx-conf
    Optional:      false
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      False   MinimumReplicasUnavailable
OldReplicaSets:  <none>
NewReplicaSet:   ngx-dep-6796688696 (2/2 replicas created)
Events:          <none>
",
        rfc1123z("2026-11-25T09:00:00Z")
    );
    assert_eq!(describe_deployment(&deploy, &[rs], &[], now()), expected);
}

#[test]
fn pod_page_shows_node_ip_owner_and_container_state() {
    let pod = json!({
        "metadata": {"name": "ngx-dep-6796688696-cmj2z", "namespace": "default",
            "labels": {"app": "ngx-dep"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "ngx-dep-6796688696", "controller": true}]},
        "spec": {"nodeName": "kl-worker1", "containers": [{"name": "nginx", "image": "nginx:alpine"}]},
        "status": {"phase": "Running", "hostIP": "192.168.56.11", "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                "image": "nginx:alpine", "imageID": "", "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    });
    let page = describe_pod(&pod, &[], now());
    assert_eq!(
        page,
        "Name:         ngx-dep-6796688696-cmj2z
Namespace:    default
Node:         kl-worker1/192.168.56.11
Labels:       app=ngx-dep
Annotations:  <none>
Status:       Running
IP:           10.244.1.5
IPs:
  IP:           10.244.1.5
Controlled By:  ReplicaSet/ngx-dep-6796688696
Containers:
  nginx:
    Container ID:   
    Image:          nginx:alpine
    Image ID:       
    Port:           <none>
    Host Port:      <none>
    State:          Waiting
      Reason:       ContainerCreating
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Conditions:
  Type           Status
  Ready          True 
Volumes:         <none>
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
"
    );
}

#[test]
fn node_page_totals_pod_requests() {
    let node = json!({
        "metadata": {"name": "kl-worker1", "labels": {"node-role.kubernetes.io/worker": ""}},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"allocatable": {"cpu": "2", "memory": "2Gi"}, "capacity": {"cpu": "2", "memory": "2Gi"},
            "addresses": [{"type": "InternalIP", "address": "192.168.56.11"}]}
    });
    let pod = |name: &str, cpu: &str, memory: &str| {
        json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-11-25T09:50:00Z"},
                   "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
    };
    let page = describe_node(
        &node,
        &[pod("a", "500m", "512Mi"), pod("b", "1", "512Mi")],
        Err("leases.coordination.k8s.io \"kl-worker1\" not found"),
        &[],
        now(),
    );
    let lines: Vec<&str> = page.lines().collect();
    assert!(lines.contains(&"Roles:              worker"), "{page}");
    assert!(lines.contains(&"Lease:              Failed to get lease: leases.coordination.k8s.io \"kl-worker1\" not found"));
    assert!(
        lines.contains(&"PodCIDR:                      10.244.1.0/24"),
        "{page}"
    );
    assert!(lines.contains(&"  default                     a       500m (25%)    0 (0%)      512Mi (25%)      0 (0%)         10m"), "{page}");
    assert!(
        lines.contains(&"  cpu                1500m (75%)  0 (0%)"),
        "{page}"
    );
    assert!(
        lines.contains(&"  memory             1Gi (50%)    0 (0%)"),
        "{page}"
    );
}

#[test]
fn quantities_add_up_in_canonical_form() {
    let q = Quantity::parse;
    assert_eq!(q("100m").add(q("200m")).canonical(), "300m");
    assert_eq!(q("1").add(q("1")).canonical(), "2");
    assert_eq!(q("128Mi").add(q("128Mi")).canonical(), "256Mi");
    assert_eq!(q("4026372Ki").canonical(), "4026372Ki");
    assert_eq!(q("1G").canonical(), "1G");
    assert_eq!(Quantity::default().canonical(), "0");
}

#[test]
fn configmap_and_generic_pages() {
    let cm = json!({"metadata": {"name": "ngx-conf", "namespace": "default"},
                        "data": {"default.conf": "server {}\n"}});
    assert_eq!(
            describe_configmap(&cm, &[], now()),
            "Name:         ngx-conf\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nData\n====\ndefault.conf:\n----\nserver {}\n\n\n\nBinaryData\n====\n\nEvents:  <none>\n"
        );
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease", "creationTimestamp": "2026-11-25T09:00:00Z"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
    assert_eq!(
            describe_generic(&lease, &[], now()),
            "Name:         n1\nNamespace:    kube-node-lease\nLabels:       <none>\nAnnotations:  <none>\nAPI Version:  coordination.k8s.io/v1\nKind:         Lease\nMetadata:\n  Creation Timestamp:  2026-11-25T09:00:00Z\nSpec:\n  Holder Identity:         n1\n  Lease Duration Seconds:  40\nEvents:                    <none>\n"
        );
}

#[test]
fn endpoints_and_replica_sets_match_kubectl() {
    // Verified against kubectl 1.35.2 describing the same objects.
    let ep = json!({"metadata": {"name": "ngx-svc", "namespace": "default"}, "subsets": [
            {"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
             "notReadyAddresses": [{"ip": "10.244.2.9"}],
             "ports": [{"port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]}]});
    assert_eq!(
        describe_endpoints(&ep, &[], now()),
        "Name:         ngx-svc
Namespace:    default
Labels:       <none>
Annotations:  <none>
Subsets:
  Addresses:          10.244.1.5,10.244.2.3
  NotReadyAddresses:  10.244.2.9
  Ports:
    Name     Port  Protocol
    ----     ----  --------
    <unset>  80    TCP
    https    443   TCP

Events:  <none>
"
    );
    let rs = json!({
        "metadata": {"name": "ngx-dep-6796688696", "namespace": "default", "uid": "rs",
            "ownerReferences": [{"kind": "Deployment", "name": "ngx-dep", "controller": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "ngx-dep"}},
            "template": {"metadata": {"labels": {"app": "ngx-dep"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]}}},
        "status": {"replicas": 2}
    });
    let owned = |phase: &str| {
        json!({"metadata": {"ownerReferences": [{"controller": true, "uid": "rs"}]},
                                         "status": {"phase": phase}})
    };
    let pods = [
        owned("Running"),
        owned("Pending"),
        json!({"status": {"phase": "Running"}}),
    ];
    let page = describe_replica_set(&rs, Ok(&pods), &[], now());
    assert!(
        page.starts_with(
            "Name:           ngx-dep-6796688696
Namespace:      default
Selector:       app=ngx-dep
Labels:         <none>
Annotations:    <none>
Controlled By:  Deployment/ngx-dep
Replicas:       2 current / 2 desired
Pods Status:    1 Running / 1 Waiting / 0 Succeeded / 0 Failed
Pod Template:
"
        ),
        "{page}"
    );
}

#[test]
fn smart_labels_split_camel_case() {
    assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
    assert_eq!(smart_label("apiVersion"), "API Version");
    assert_eq!(smart_label("clusterIP"), "Cluster IP");
    assert_eq!(smart_label("podCIDRs"), "Pod CID Rs");
    assert_eq!(smart_label("x-y"), "X-y");
    assert_eq!(smart_label("a.b"), "a.b");
}

// (With `Mounts: <none>` on one line, Go's tabwriter aligns the container
// block with `Node-Selectors:`, one column for all of them.)
#[test]
fn stateful_set_page_matches_kubectl() {
    let sts = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                      "creationTimestamp": "2026-11-25T09:00:00Z"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "echo", "image": "kube-lite/echo"}]}
            }
        },
        "status": {"replicas": 2}
    });
    let pod = |name: &str, phase: &str| {
        json!({"metadata": {"name": name, "ownerReferences": [{"controller": true, "uid": "u1"}]},
               "status": {"phase": phase}})
    };
    let pods = [pod("web-0", "Running"), pod("web-1", "Pending")];
    let page = describe_stateful_set(&sts, Ok(&pods), &[], now());
    assert_eq!(
        page,
        "Name:               web\n\
         Namespace:          default\n\
         CreationTimestamp:  Wed, 25 Nov 2026 09:00:00 +0000\n\
         Selector:           app=web\n\
         Labels:             <none>\n\
         Annotations:        <none>\n\
         Replicas:           2 desired | 2 total\n\
         Update Strategy:    RollingUpdate\n  \
         Partition:        0\n\
         Pods Status:        1 Running / 1 Waiting / 0 Succeeded / 0 Failed\n\
         Pod Template:\n  \
         Labels:  app=web\n  \
         Containers:\n   \
         echo:\n    \
         Image:         kube-lite/echo\n    \
         Port:          <none>\n    \
         Host Port:     <none>\n    \
         Environment:   <none>\n    \
         Mounts:        <none>\n  \
         Volumes:         <none>\n  \
         Node-Selectors:  <none>\n  \
         Tolerations:     <none>\n\
         Volume Claims:     <none>\n\
         Events:            <none>\n"
    );
}

#[test]
fn daemon_set_page_counts_nodes_as_kubectl() {
    let ds = json!({
        "metadata": {"name": "agent", "namespace": "default", "uid": "d1"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "echo", "image": "kube-lite/echo"}]}
            }
        },
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                   "updatedNumberScheduled": 1, "numberAvailable": 2}
    });
    let page = describe_daemon_set(&ds, Err("forbidden"), &[], now());
    let head: Vec<&str> = page.lines().take(11).collect();
    assert_eq!(
        head,
        [
            "Name:           agent",
            "Namespace:      default",
            "Selector:       app=agent",
            "Node-Selector:  <none>",
            "Labels:         <none>",
            "Annotations:    <none>",
            "Desired Number of Nodes Scheduled: 2",
            "Current Number of Nodes Scheduled: 2",
            "Number of Nodes Scheduled with Up-to-date Pods: 1",
            "Number of Nodes Scheduled with Available Pods: 2",
            "Number of Nodes Misscheduled: 0",
        ]
    );
    assert!(
        page.contains("Pods Status:  error in fetching pods: forbidden\n"),
        "{page}"
    );
}

#[test]
fn job_page_matches_kubectl() {
    let job = json!({
        "metadata": {"name": "shards", "namespace": "default",
                     "ownerReferences": [{"kind": "CronJob", "name": "tick", "controller": true}]},
        "spec": {
            "parallelism": 2, "completions": 5, "completionMode": "Indexed",
            "suspend": false, "backoffLimit": 6,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"spec": {"containers": [{"name": "work", "image": "busybox"}]}}
        },
        "status": {"startTime": "2026-11-25T09:00:00Z", "completionTime": "2026-11-25T09:00:42Z",
                   "succeeded": 5, "ready": 0, "completedIndexes": "0-4"}
    });
    let page = describe_job(&job, &[], now());
    let head: Vec<&str> = page.lines().take(16).collect();
    assert_eq!(
        head,
        [
            "Name:               shards",
            "Namespace:          default",
            "Selector:           batch.kubernetes.io/controller-uid=u",
            "Labels:             <none>",
            "Annotations:        <none>",
            "Controlled By:      CronJob/tick",
            "Parallelism:        2",
            "Completions:        5",
            "Completion Mode:    Indexed",
            "Suspend:            false",
            "Backoff Limit:      6",
            "Start Time:         Wed, 25 Nov 2026 09:00:00 +0000",
            "Completed At:       Wed, 25 Nov 2026 09:00:42 +0000",
            "Duration:           42s",
            "Pods Statuses:      0 Active (0 Ready) / 5 Succeeded / 0 Failed",
            "Completed Indexes:  0-4",
        ]
    );
}

#[test]
fn cron_job_page_shows_schedule_and_active_jobs() {
    let cron = json!({
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "tick-29944081"}]}
    });
    let page = describe_cron_job(&cron, &[], now());
    for line in [
        "Schedule:                      */1 * * * *",
        "Concurrency Policy:            Allow",
        "Suspend:                       False",
        "Successful Job History Limit:  3",
        "Starting Deadline Seconds:     <unset>",
        "Selector:                      <unset>",
        "Last Schedule Time:  <unset>",
        "Active Jobs:         tick-29944081",
    ] {
        assert!(page.contains(line), "{line:?} in\n{page}");
    }
}
