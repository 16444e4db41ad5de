#!/usr/bin/env bash
# The host tools the test suites use beside Docker: openssl (TLS certificates for serve --http and the second
# engine), the OpenSSH client (ssh-keygen, ssh-agent, ssh-add: the ssh:// engine test) and iproute2 (the second
# engine's bridge). Debian 12 usually has them; installed with apt when one is missing (needs root). Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
command -v openssl >/dev/null || missing+=(openssl)
{ command -v ssh-keygen && command -v ssh-agent && command -v ssh-add; } >/dev/null || missing+=(openssh-client)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
if [ ${#missing[@]} -eq 0 ]; then echo "test-tools: openssl, openssh-client and iproute2 present"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "test-tools: missing ${missing[*]}; installing them needs root (apt-get install ${missing[*]})" >&2; exit 1; fi
echo "test-tools: installing ${missing[*]} (apt)"
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
