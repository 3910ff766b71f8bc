#!/bin/sh
# Runs a command as the owner of the mounted checkout, so that what the compose build writes
# there (plugins/build-trt<TAG>/, out/timing-caches/, model_repository/unet/1/*, __pycache__/)
# belongs to the host user who owns the checkout, never to root.
#   run_as_owner.sh COMMAND [ARG...]     (the checkout: $UNETKIT_CHECKOUT, default /opt/unetkit)
# Already that user, or a checkout owned by root: runs the command as it is. HOME becomes a
# folder of that user's (CUDA's and Python's caches go there), outside the checkout.
set -eu
checkout=${UNETKIT_CHECKOUT:-/opt/unetkit}
owner=$(stat -c %u "$checkout")
group=$(stat -c %g "$checkout")
if [ "$(id -u)" != 0 ] || [ "$owner" = 0 ]; then
  exec "$@"
fi
home=$(mktemp -d /tmp/unetkit-home.XXXXXX)
chown "$owner:$group" "$home"
export HOME="$home"
exec setpriv --reuid="$owner" --regid="$group" --clear-groups -- "$@"
