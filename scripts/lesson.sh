#!/usr/bin/env bash
# Brings up kube-lite on this machine and walks the Services lesson
# (../shared/lesson/README.md), printing what a student sees at each step.
#   scripts/lesson.sh          build, start the apiserver, walk the lesson
#   scripts/lesson.sh down     stop what this script started
#
# Today the cluster is the apiserver and the controller (the node agents
# come next): the Deployment gets its ReplicaSet and Pods, but with no nodes
# the Pods stay Pending, Endpoints stay empty and nothing answers on the
# ClusterIP yet.
set -euo pipefail
cd "$(dirname "$0")/.."
lab=.lab
mkdir -p "$lab"

stop() {
  for component in controller apiserver; do
    pidfile="$lab/$component.pid"
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      # Only the process this script started, by PID.
      if kill -0 "$pid" 2>/dev/null && grep -q "$component" "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid" && echo "stopped $component (pid $pid)"
      fi
      rm -f "$pidfile"
    fi
  done
}

if [ "${1:-}" = "down" ]; then
  stop
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then scripts/install-deps.sh >/dev/null; fi
cargo build --release --bins
bin="$PWD/target/release"
stop
"$bin/apiserver" --listen 127.0.0.1:6443 --data-dir "$lab/data" >"$lab/apiserver.log" 2>&1 &
echo $! >"$lab/apiserver.pid"
for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:6443/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
"$bin/controller" --server http://127.0.0.1:6443 >"$lab/controller.log" 2>&1 &
echo $! >"$lab/controller.pid"
cat >"$lab/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kube-lite
  cluster:
    server: http://127.0.0.1:6443
contexts:
- name: kube-lite
  context:
    cluster: kube-lite
    namespace: default
current-context: kube-lite
KC
export KUBECONFIG="$PWD/$lab/kubeconfig"
k() { echo; echo "\$ kubectl-lite $*"; "$bin/kubectl-lite" "$@" || true; }
step() { echo; echo "=== $* ==="; }

lesson=examples/lesson
step "The Deployment and its ConfigMap"
k apply -f $lesson/ngx-conf.yml -f $lesson/ngx-dep.yml
step "1. Generate a Service template instead of typing YAML"
k expose deploy ngx-dep --port=80 --target-port=80 --dry-run=client -o yaml
step "2. Create the Service"
k apply -f $lesson/ngx-svc.yml
k apply -f $lesson/all-in-one.yml
step "3. The Service and its ClusterIP"
k get svc
step "4. Its Endpoints (empty until the controller runs Pods)"
k describe svc ngx-svc
step "5. Pods (Pending: no node agents yet, so the scheduler has no nodes)"
sleep 2
k get deploy,rs,pod -o wide
k describe pod -l app=ngx-dep
step "9. Namespaces"
k get ns
step "10. NodePort"
k apply -f $lesson/ngx-svc-nodeport.yml
k get svc -o wide
step "11. Clean up"
k delete -f $lesson/all-in-one.yml
k get svc,deploy,cm
echo
echo "The apiserver keeps running at http://127.0.0.1:6443 (logs: $lab/apiserver.log, $lab/controller.log)."
echo "Try:  KUBECONFIG=$PWD/$lab/kubeconfig $bin/kubectl-lite get ns"
echo "Stop: scripts/lesson.sh down"
