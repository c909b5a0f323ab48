#!/usr/bin/env bash
# Try taskbot in the terminal: builds the example image if it is missing,
# then starts `taskbot shell` with the example configuration and policies.
#
# The example stacks run in taskbot-example/busybox:latest, an image made
# here from Debian's static busybox, because no image can be pulled on an
# offline machine. Extra arguments go to `taskbot shell`.
set -euo pipefail
cd "$(dirname "$0")/.."

image=taskbot-example/busybox:latest
if ! docker image inspect "$image" >/dev/null 2>&1; then
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    echo "installing Debian's busybox-static for the example image" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for tool in $("$root/bin/busybox" --list); do
    [ "$tool" = busybox ] || ln -s busybox "$root/bin/$tool"
  done
  tar -C "$root" -c . | docker import - "$image" >/dev/null
  echo "built $image" >&2
fi

export TASKBOT_DEMO_TOKEN=${TASKBOT_DEMO_TOKEN:-demo-token-$RANDOM$RANDOM}
exec go run ./cmd/taskbot shell --config examples/taskbot.yaml --user U0DEMO "$@"
