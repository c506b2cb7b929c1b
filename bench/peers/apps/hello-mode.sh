#!/bin/sh
# Runs examples/hello the way the mode file says: "slow" boots in 2 s,
# "broken" fails at once. exec keeps the pid, so LISTEN_PID and the notify
# socket's credentials stay right.
mode=$(cat "$APP_MODE_FILE" 2>/dev/null || echo fast)
case "$mode" in
slow) export HELLO_BOOT_DELAY=2s ;;
broken)
	echo "hello-mode: broken on purpose (the mode file says broken)" >&2
	exit 1
	;;
esac
exec "$(dirname "$0")/hello" "$@"
