#!/bin/sh
# The demo behind "make demo": the real manager runs examples/demo with a
# temporary configuration, which is then changed (a restart), broken (the
# check refuses it, the program keeps running) and finally manager is sent
# SIGTERM (a graceful stop). Everything printed below is real output.
set -eu
cd "$(dirname "$0")/.."

manager=${MANAGER:-$PWD/manager}
work=$(mktemp -d)
pid=
# Whatever ends the demo (the end, an error, Ctrl-C, a closed pipe as in
# "make demo | head") stops manager, which stops the program in its grace
# period, and removes the temporary directory. manager, started with &,
# ignores SIGINT (a shell without job control does that to background
# commands), hence SIGTERM.
cleanup() {
	trap - EXIT INT TERM HUP PIPE
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 129' HUP
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 141' PIPE
trap 'cleanup; exit 143' TERM
go build -o "$work/demo" ./examples/demo
cd "$work"
conf=app.conf
log=output
printf 'greeting = hello\n' >"$conf"

bold='' plain=''
if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }

# show prints the output lines not shown yet.
shown=0
show() {
	total=$(wc -l <"$log")
	if [ "$total" -gt "$shown" ]; then
		tail -n "+$((shown + 1))" "$log" | head -n "$((total - shown))"
		shown=$total
	fi
}

# wait_for PATTERN: show the output until a line matches, for at most 10 s.
wait_for() {
	i=0
	until grep -q -- "$1" "$log"; do
		show
		i=$((i + 1))
		if [ "$i" -gt 200 ]; then
			echo "demo: gave up waiting for: $1" >&2
			exit 1
		fi
		sleep 0.05
	done
	show
}

say "in $work: manager -config $conf -poll 100ms -debounce 300ms -check './demo -check $conf' -- ./demo $conf"
: >"$log"
"$manager" -config "$conf" -poll 100ms -debounce 300ms \
	-check "./demo -check $conf" -- ./demo "$conf" >>"$log" 2>&1 &
pid=$!
wait_for 'started with'

say "a good change: manager checks it, then restarts the program"
printf 'greeting = bonjour\n' >"$conf"
wait_for 'bonjour'

say "a bad change: the check refuses it, the program keeps running untouched"
printf 'greeting: hola\n' >"$conf"
wait_for 'keeping the running child'

say "kill -TERM manager: the program gets SIGTERM and exits in its grace period"
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=
show
say "manager exited with code $code"
