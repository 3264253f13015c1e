# shellcheck shell=bash
# Process and port helpers shared by scripts/stack and scripts/cluster. Source it after
# common.sh; it defines functions only and runs nothing.
#
# The caller sets LD_PROG (the script's name: messages start with it), HOST (the address
# everything listens on) and, while running a command, CMD (so that a failure during `up`
# can say that what did start is still running).

say() { echo "$LD_PROG: $*"; }

# fail COMPONENT MESSAGE [LOG...]: name the component, show each log's tail, exit 1.
fail() {
  local comp="$1" msg="$2" log
  shift 2
  echo "$LD_PROG: $comp FAILED: $msg" >&2
  for log in "$@"; do
    [[ -s "$log" ]] || continue
    echo "----- last 40 lines of $log -----" >&2
    tail -n 40 "$log" >&2
  done
  [[ "${CMD:-}" != up ]] \
    || echo "$LD_PROG: (components that did start are still running: scripts/$LD_PROG down stops them)" >&2
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Who listens on a port (for error messages); empty if unknown.
port_owner() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -n 1 || true
}

# pid_of PIDFILE PATTERN: print the pid if it is alive and its command line
# matches PATTERN (guards against a recycled pid); fail otherwise.
pid_of() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(head -n 1 "$1" | tr -dc 0-9)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
  echo "$pid"
}

# wait_exit PID SECONDS: wait for a process (not our child) to go away.
wait_exit() {
  local pid="$1" end=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

# conf_get FILE REGEX: first value after "key<sep>" in a config file we wrote.
conf_get() { [[ -f "$1" ]] && sed -n "s/^$2//p" "$1" | head -n 1 | tr -d "'\" "; }

# For failure messages, once our own process is gone: is someone else on the port?
port_hint() {
  port_open "$1" || return 0
  local owner
  owner="$(port_owner "$1")"
  echo "; $HOST:$1 is in use by another process${owner:+ ($owner)}"
}

# Kafka takes many seconds to notice a taken port: check before starting it.
need_free_port() { # COMPONENT PORT LOG...
  local comp="$1" port="$2"
  shift 2
  port_open "$port" || return 0
  fail "$comp" "cannot start$(port_hint "$port")" "$@"
}

# launch_detached DIR PIDFILE OUT COMMAND...: start COMMAND in the background, in DIR, in
# a session of its own (setsid: a Ctrl-C in the calling shell does not reach it), stdout
# and stderr appended to OUT. The inner shell writes its pid to PIDFILE and then becomes
# COMMAND (exec); the subshell only sets the working dir and exits, so nothing of ours
# stays around holding the lock fd (9). Returns once PIDFILE is written (5 s at most):
# check the pid with pid_of.
launch_detached() {
  local dir="$1" pidfile="$2" out="$3"
  shift 3
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$ and $0 are for the inner shell
  (
    cd "$dir" || exit 1
    setsid bash -c 'echo $$ >"$0" && exec nohup "$@"' "$pidfile" "$@" \
      </dev/null >>"$out" 2>&1 9>&- &
  )
  for _ in $(seq 50); do [[ -s "$pidfile" ]] && break; sleep 0.1; done
}

# reap COMPONENT PID SECONDS LOG...: wait for PID (already sent SIGTERM) to exit; SIGKILL
# it after SECONDS.
reap() {
  local comp="$1" pid="$2" secs="$3"
  shift 3
  wait_exit "$pid" "$secs" && return 0
  echo "$LD_PROG: $comp (pid $pid) still running after ${secs}s: sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait_exit "$pid" 10 || fail "$comp" "pid $pid survived SIGKILL" "$@"
}
