# %systemd_user_post mcp-gateway.socket mcp-gateway.service, expanded (systemd's macros.systemd):
# on first install, apply the global user preset, which on Fedora and its relatives leaves the
# units disabled; each user enables the socket with `systemctl --user enable --now`.
if [ $1 -eq 1 ] && [ -x "/usr/lib/systemd/systemd-update-helper" ]; then
    /usr/lib/systemd/systemd-update-helper install-user-units mcp-gateway.socket mcp-gateway.service || :
fi
