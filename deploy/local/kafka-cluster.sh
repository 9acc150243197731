#!/usr/bin/env bash
# Three Apache Kafka nodes (KRaft: each broker and controller) on 127.0.0.1, from the same
# jars as the single broker of kafka.sh, beside it: the single broker stays the default
# and keeps running. For checking what replication gives (bench/faults/check.py --brokers 3).
#
#   deploy/local/kafka-cluster.sh start|stop|status
#   deploy/local/kafka-cluster.sh start-node N|kill-node N|pid N      (N = 1, 2, 3)
#
# Node N listens on 127.0.0.1:919(1+N) (brokers 9192, 9193, 9194; controllers 9292-9294);
# everything lives under .state/kafka-3/node-N (data/, logs/, server.properties,
# kafka.pid), the cluster id in .state/kafka-3/cluster.id. Replication factor 3 and
# min.insync.replicas 2 for every topic, the consumer offsets and the transaction log: an
# acknowledged write (acks=all) is on two brokers, and one node may be lost.
# kill-node is kill -9 (the fault check's crash); start-node brings it back.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_STATE="$STATE/kafka-3"
HOST=127.0.0.1
NODES=(1 2 3)
BROKER_BASE_PORT="${KAFKA_CLUSTER_PORT:-9191}"
CONTROLLER_BASE_PORT="${KAFKA_CLUSTER_CONTROLLER_PORT:-9291}"
# Three JVMs share the machine with everything else: a small heap each.
HEAP="${KAFKA_CLUSTER_HEAP:-256m}"
READY_TIMEOUT_S="${KAFKA_READY_TIMEOUT_S:-240}"
STOP_TIMEOUT_S="${KAFKA_STOP_TIMEOUT_S:-30}"

broker_port() { echo $((BROKER_BASE_PORT + $1)); }
controller_port() { echo $((CONTROLLER_BASE_PORT + $1)); }
node_dir() { echo "$CLUSTER_STATE/node-$1"; }

bootstrap() {
  local n out=()
  for n in "${NODES[@]}"; do out+=("$HOST:$(broker_port "$n")"); done
  (
    IFS=,
    echo "${out[*]}"
  )
}

voters() {
  local n out=()
  for n in "${NODES[@]}"; do out+=("$n@$HOST:$(controller_port "$n")"); done
  (
    IFS=,
    echo "${out[*]}"
  )
}

check_node() {
  [[ " ${NODES[*]} " == *" ${1:-} "* ]] || die "node must be one of ${NODES[*]}, not '${1:-}'"
}

write_config() {
  local n="$1" dir
  dir="$(node_dir "$n")"
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<PROPS
# Written by deploy/local/kafka-cluster.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://$HOST:$(broker_port "$n"),CONTROLLER://$HOST:$(controller_port "$n")
advertised.listeners=PLAINTEXT://$HOST:$(broker_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
# A replica that missed acknowledged writes never becomes leader.
unclean.leader.election.enable=false
# A crashed broker stalls every partition it holds a replica of, not only those it led:
# acks=all waits for each replica in the in-sync set, and a dead one leaves it (and its
# partitions get new leaders) only once the controller fences its broker for missing
# heartbeats. Kafka's 9 s (heartbeats every 2 s) meant 9-12 s of 503s from ingest for
# nearly every request; 3 s (every 0.5 s) is still many heartbeats on a busy machine.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
# Leaders stay where a failover put them. Kafka moves them back to a restarted broker up
# to 5 minutes later, in the middle of whatever runs then: a fault check started 5 minutes
# after another saw 17 leaders moved 2 s into its load, and 503s for 12 s before its fault.
auto.leader.rebalance.enable=false
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.recovery.threads.per.data.dir=2
PROPS
  cat >"$dir/log4j.properties" <<'LOG4J'
log4j.rootLogger=INFO, kafkaAppender
log4j.appender.kafkaAppender=org.apache.log4j.RollingFileAppender
log4j.appender.kafkaAppender.File=${kafka.logs.dir}/server.log
log4j.appender.kafkaAppender.MaxFileSize=20MB
log4j.appender.kafkaAppender.MaxBackupIndex=2
log4j.appender.kafkaAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.kafkaAppender.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
LOG4J
}

java_opts() {
  local dir
  dir="$(node_dir "$1")"
  kafka_java_opts "$HEAP" "$dir/logs" "$dir/log4j.properties"
}

format_storage() {
  local dir
  dir="$(node_dir "$1")"
  kafka_format_storage "kafka node $1" "$dir/server.properties" "$dir/data" \
    "$CLUSTER_STATE/cluster.id" "$dir/logs/format.log"
}

# Still a broker of ours with this node's properties.
node_pid() { owned_pid "$(node_dir "$1")/kafka.pid" "kafka.Kafka $(node_dir "$1")/server.properties"; }

launch_node() {
  local n="$1" dir pid port
  dir="$(node_dir "$n")"
  if pid="$(node_pid "$n")"; then
    echo "$pid"
    return
  fi
  for port in "$(broker_port "$n")" "$(controller_port "$n")"; do
    if port_open "$HOST" "$port"; then
      die "port $HOST:$port is taken by another process, not by node $n of the cluster ($(port_owner "$port"))"
    fi
  done
  write_config "$n"
  format_storage "$n"
  local -a opts
  mapfile -t opts < <(java_opts "$n")
  setsid java "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
    >>"$dir/logs/kafka.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
  echo "$pid"
}

wait_node() {
  local n="$1" pid="$2" rc=0
  uv_run python deploy/local/wait_kafka.py --bootstrap "$HOST:$(broker_port "$n")" \
    --timeout "$READY_TIMEOUT_S" --pid "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 25 "$(node_dir "$n")/logs/server.log" >&2 2>/dev/null || true
    die "node $n of the Kafka cluster (pid $pid) did not answer on $HOST:$(broker_port "$n") (exit $rc)"
  fi
}

load_libs() {
  LIBS="$("$ROOT/deploy/local/kafka.sh" libs)"
}

start() {
  load_libs
  mkdir -p "$CLUSTER_STATE"
  local n
  local -A pids=()
  # All three first: a node answers only once a majority of the controllers is up.
  for n in "${NODES[@]}"; do pids[$n]="$(launch_node "$n")"; done
  for n in "${NODES[@]}"; do wait_node "$n" "${pids[$n]}"; done
  say "kafka cluster: 3 nodes up, heap $HEAP each; bootstrap $(bootstrap)"
}

start_node() {
  check_node "$1"
  load_libs
  local pid
  pid="$(launch_node "$1")"
  wait_node "$1" "$pid"
  say "kafka cluster: node $1 up (pid $pid)"
}

kill_node() {
  check_node "$1"
  local pid
  pid="$(node_pid "$1")" || die "node $1 is not running"
  kill -KILL "$pid"
  # A killed JVM takes a moment to go; report only once it has.
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$(node_dir "$1")/kafka.pid"
  say "kafka cluster: node $1 killed (pid $pid)"
}

stop() {
  local n pid
  for n in "${NODES[@]}"; do
    pid="$(node_pid "$n")" || continue
    kill -TERM "$pid"
  done
  for n in "${NODES[@]}"; do
    pid="$(node_pid "$n")" || continue
    wait_gone "$pid" "node $n" "$STOP_TIMEOUT_S"
    rm -f "$(node_dir "$n")/kafka.pid"
  done
  say "kafka cluster: stopped"
}

status() {
  local n pid rc=0
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")" && port_open "$HOST" "$(broker_port "$n")"; then
      say "kafka cluster: node $n running (pid $pid) on $HOST:$(broker_port "$n")"
    else
      say "kafka cluster: node $n not running"
      rc=1
    fi
  done
  return "$rc"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  bootstrap) bootstrap ;;
  start-node) start_node "${2:-}" ;;
  kill-node) kill_node "${2:-}" ;;
  pid)
    check_node "${2:-}"
    node_pid "$2"
    ;;
  *)
    echo "usage: $0 start|stop|status|bootstrap|start-node N|kill-node N|pid N" >&2
    exit 2
    ;;
esac
