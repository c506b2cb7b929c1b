# baton %post: tell systemd about the template units; never enable an
# instance. $1 is 1 on install, 2 or more on upgrade (then %postun reloads
# the running instances).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
