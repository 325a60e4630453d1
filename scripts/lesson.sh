#!/usr/bin/env bash
# Brings up a kube-lite lab cluster on this machine (a master and two
# workers, each a network namespace standing in for a VirtualBox VM) and
# walks the Services lesson (../shared/lesson/README.md, steps 1-11),
# printing what a student sees at each step.
#   sudo scripts/lesson.sh          install, build, bring the lab up, walk the lesson
#   sudo scripts/lesson.sh down     remove the lab (namespaces, links, routes, processes)
#
# The lab stays up afterwards: export KUBECONFIG=$PWD/.lab/kubeconfig and
# keep exploring with target/release/kubectl-lite.
#
# Any step that does not give what the lesson shows stops the walk, naming
# the step and the command (exit code 1): a teacher sees at once where the
# cluster is not ready for a class.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
lab="$PWD/.lab"
# PROFILE=debug uses a debug build (quicker to build, slower to run).
profile="${PROFILE:-release}"
bin="$PWD/target/$profile"

if [ "$(id -u)" -ne 0 ]; then
  echo "lesson.sh: run as root (the lab creates network namespaces)" >&2
  exit 1
fi

if [ "${1:-}" = "down" ]; then
  if [ -x "$bin/e2e" ]; then "$bin/e2e" down --dir "$lab"; else cargo run -q -p e2e -- down --dir "$lab"; fi
  exit 0
fi

scripts/install-deps.sh >/dev/null
if [ "$profile" = release ]; then cargo build --release --bins; else cargo build --bins; fi
"$bin/e2e" up --workers 2 --dir "$lab"
export KUBECONFIG="$lab/kubeconfig"
export PATH="$bin:$PATH"

current_step="setting up"
fail() { echo "lesson.sh: step \"$current_step\": $*" >&2; exit 1; }
trap 'echo "lesson.sh: step \"$current_step\" failed at line $LINENO: $BASH_COMMAND" >&2' ERR
k() { echo; echo "\$ kubectl-lite $*"; kubectl-lite "$@"; }
step() { current_step="$*"; echo; echo "=== $* ==="; }
# Runs a command on a "VM" (a lab node's namespace), as if ssh'ed into it.
on_node() { local node=$1; shift; echo; echo "[$node]\$ $*"; ip netns exec "$node" "$@"; }
# Waits (bounded: 60 s) until a command succeeds, or stops the walk.
wait_until() {
  for _ in $(seq 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  fail "timed out waiting for: $*"
}
ready_pods() { kubectl-lite get pods -l app=ngx-dep --no-headers 2>/dev/null | grep -c " 1/1 " || true; }
ready_at_least() { [ "$(ready_pods)" -ge "$1" ]; }
nodes_ready() { [ "$(kubectl-lite get nodes --no-headers 2>/dev/null | grep -c " Ready " || true)" -ge 3 ]; }

lesson=examples/lesson
step "The cluster: three VMs (network namespaces), made with kubeadm-lite init and join"
wait_until nodes_ready
k get nodes -o wide
wait_until kubectl-lite get svc -n kube-system kube-dns

step "The Deployment and its ConfigMap"
k apply -f $lesson/ngx-conf.yml -f $lesson/ngx-dep.yml
wait_until ready_at_least 2

step "1. Generate a Service template instead of typing YAML"
k expose deploy ngx-dep --port=80 --target-port=80 --dry-run=client -o yaml

step "2. Create the Service (or everything at once from all-in-one.yml)"
k apply -f $lesson/ngx-svc.yml
k apply -f $lesson/all-in-one.yml

step "3. The Service and its ClusterIP (from 10.96.0.0/12, chosen by the apiserver)"
k get svc
cluster_ip=$(kubectl-lite get svc ngx-svc -o jsonpath='{.spec.clusterIP}')
[ -n "$cluster_ip" ] || fail "ngx-svc has no ClusterIP"

step "4. Its Endpoints: the two Pods' IPs"
wait_until sh -c "kubectl-lite describe svc ngx-svc | grep -q 'Endpoints: *10.244.*,10.244'"
k describe svc ngx-svc

step "5. The same Pod IPs, and the node of each"
k get pod -o wide
pod=$(kubectl-lite get pods -l app=ngx-dep -o name | head -1 | cut -d/ -f2)

step "6. curl the ClusterIP from inside a Pod: the requests spread over both Pods"
for _ in 1 2 3 4 5 6; do
  echo; echo "\$ kubectl-lite exec $pod -- curl -s http://$cluster_ip"
  kubectl-lite exec "$pod" -- curl -s -m 3 "http://$cluster_ip"
done
echo; echo "... and from a node (a VM) too:"
on_node kl-worker1 curl -s -m 3 "http://$cluster_ip"
echo; echo "ping gets no answer: the ClusterIP is virtual, only the Service's ports exist"
echo; echo "\$ kubectl-lite exec $pod -- ping -c 1 -W 1 $cluster_ip"
if kubectl-lite exec "$pod" -- ping -c 1 -W 1 "$cluster_ip"; then
  fail "ping $cluster_ip was answered: a ClusterIP must not answer ICMP"
fi
echo; echo "The rules that make it work, on every node:"
on_node kl-worker2 nft list chain ip kube-lite services
on_node kl-worker2 nft list set ip kube-lite services-with-2-endpoints
on_node kl-worker2 nft list map ip kube-lite service-endpoints
echo; echo "The same path, node by node, read from each node's kernel (kube-lite's own verb):"
k trace svc/ngx-svc

step "7. Delete a Pod: the Deployment replaces it and Endpoints follow"
k delete pod "$pod"
wait_until ready_at_least 2
k describe svc ngx-svc
k get pod -o wide
pod=$(kubectl-lite get pods -l app=ngx-dep -o name | head -1 | cut -d/ -f2)
echo; echo "\$ kubectl-lite exec $pod -- curl -s http://$cluster_ip"
kubectl-lite exec "$pod" -- curl -s -m 3 "http://$cluster_ip"

step "8. Scale to 5: five endpoints, and curl reaches all five"
k scale deploy ngx-dep --replicas=5
wait_until ready_at_least 5
k get pod -o wide
k describe svc ngx-svc
echo; echo "\$ for i in \$(seq 30); do curl -s http://$cluster_ip | grep host; done | sort | uniq -c"
for _ in $(seq 30); do kubectl-lite exec "$pod" -- curl -s -m 3 "http://$cluster_ip" 2>/dev/null | grep host; done | sort | uniq -c

step "9. DNS: the Service by name, from inside a Pod"
for name in ngx-svc ngx-svc.default ngx-svc.default.svc.cluster.local; do
  echo; echo "\$ kubectl-lite exec $pod -- curl -s http://$name"
  kubectl-lite exec "$pod" -- curl -s -m 3 "http://$name"
done
pod_ip=$(kubectl-lite get pod "$pod" -o jsonpath='{.status.podIP}')
pod_record="${pod_ip//./-}.default.pod.cluster.local"
k exec "$pod" -- getent hosts "$pod_record"
k get ns

step "10. NodePort: the Service on every node's IP, from the VM host"
k apply -f $lesson/ngx-svc-nodeport.yml
k get svc
node_port=$(kubectl-lite get svc ngx-svc -o jsonpath='{.spec.ports[0].nodePort}')
for ip in 192.168.56.10 192.168.56.11 192.168.56.12; do
  echo; echo "\$ curl -s http://$ip:$node_port"
  curl -s -m 3 "http://$ip:$node_port"
done

step "11. Clean up: the ClusterIP and NodePort are freed, the rules disappear from every node"
k delete -f $lesson/all-in-one.yml
k get svc,deploy,cm
for node in kl-master kl-worker1 kl-worker2; do
  echo; echo "[$node]\$ nft list table ip kube-lite | grep -c ngx-svc"
  # (grep -c exits 1 when it counts nothing, which is the answer here.)
  left=$(ip netns exec "$node" nft list table ip kube-lite | grep -c ngx-svc || true)
  echo "$left"
  [ "$left" = 0 ] || fail "$node still has $left rules for ngx-svc"
done

echo
echo "The lab is still up. Explore:  export KUBECONFIG=$lab/kubeconfig PATH=$bin:\$PATH"
echo "Remove it:                    sudo scripts/lesson.sh down"
