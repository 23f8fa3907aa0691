#!/bin/sh
# A cluster joins rainbow and pulls its jobs: register it (once: the secret and submit token are saved in
# the config, which lives on the cluster's volume; waiting up to 2 minutes for the server to come up; a
# cluster the server knows but whose volume was lost gets new credentials), then run the agent.
# Usage: join-cluster.sh NAME R-FILE
# with RAINBOW_AGENT_HOST (the server) and RAINBOW_AGENT_* options for the agent in the environment.
set -eu
name=$1
resources=$2
config=${RAINBOW_AGENT_CONFIG_PATH:-/data/rainbow-config.yaml}
if [ ! -s "$config" ]; then
    python -m rainbow.register --host "$RAINBOW_AGENT_HOST" --cluster-name "$name" --R "$resources" \
        --wait-for-server --timeout 120 --renew \
        --secret "$(cat "${RAINBOW_REGISTRATION_SECRET_FILE:-/run/secrets/registration_secret}")" \
        --config-path "$config" --save
fi
exec rainbow agent --config-path "$config" --cluster-name "$name"
