#!/bin/bash
# Start and stop real object-storage servers on loopback for integration tests.
# Wharf's copy of the team's shared/tools/object-stores.sh, so a clone works on its own; local
# changes: a larger memstore (STORE_MEMSTORE_BYTES) and a Ceph start that waits and retries.
#   object-stores.sh install                       apt + pip + npm installs (idempotent)
#   object-stores.sh start [s3 s3moto gcs azure swift]   (default: s3 gcs azure swift)
#   object-stores.sh stop                          stops only what this script started
#   object-stores.sh env                           prints the endpoints as shell exports
# Servers, endpoints and credentials:
#   s3     Ceph RGW (real S3)        http://127.0.0.1:7480   testkey / testsecret
#   s3moto moto server (mock S3)     http://127.0.0.1:5000   any key (does not check signatures)
#   gcs    gcp-storage-emulator      http://127.0.0.1:9023   (STORAGE_EMULATOR_HOST)
#   azure  Azurite 3.35.0            http://127.0.0.1:10000/devstoreaccount1  standard dev key
#   swift  OpenStack Swift, tempauth http://127.0.0.1:8080/auth/v1.0  test:tester / testing
# STORE_DIR (default ./.ci-stores) holds data, logs and pids; PY_BIN is the bin dir of the
# Python environment that has moto and gcp-storage-emulator (default: the one on PATH).
set -uo pipefail
D=${STORE_DIR:-$PWD/.ci-stores}; PIDS=$D/pids; LOG=$D/log; mkdir -p $PIDS $LOG
PY_BIN=${PY_BIN:-$(dirname "$(command -v python3)")}

waitfor() { # name timeout_s cmd...   (a wall-clock deadline: some probes take seconds)
  local n=$1 t=$2; shift 2; local t0=$(date +%s%N); local deadline=$(( $(date +%s) + t ))
  while [ "$(date +%s)" -lt "$deadline" ]; do "$@" >/dev/null 2>&1 && { echo "$n ready in $(( ($(date +%s%N)-t0)/1000000 ))ms"; return 0; }; sleep 0.1; done
  echo "$n NOT ready after ${t}s" >&2; return 1; }
http_is() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$2")" = "$1" ]; }
http_any() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$1")" != 000 ]; }
bg() { local n=$1; shift; "$@" > $LOG/$n.log 2>&1 & echo $! > $PIDS/$n.pid; }

start_s3() { # Ceph RGW: mon + memstore OSD + radosgw on 127.0.0.1:7480, keys testkey/testsecret
  local R=$D/ceph; rm -rf $R; mkdir -p $R/{mon,osd/0,run,log}; local FSID=$(uuidgen)
  cat > $R/ceph.conf <<EOC
[global]
fsid = $FSID
mon host = v1:127.0.0.1:6789
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush chooseleaf type = 0
run dir = $R/run
admin socket = $R/run/\$name.asok
log file = $R/log/\$name.log
keyring = /dev/null
[mon]
mon data = $R/mon/\$id
[osd]
osd data = $R/osd/\$id
osd objectstore = memstore
memstore device bytes = ${STORE_MEMSTORE_BYTES:-6442450944}
[client.rgw.gw]
rgw frontends = beast endpoint=127.0.0.1:7480
rgw data = $R/rgw
EOC
  local C="-c $R/ceph.conf"
  ceph-authtool --create-keyring $R/mon.keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --add a 127.0.0.1:6789 --fsid $FSID $R/monmap >/dev/null
  ceph-mon $C --mkfs -i a --monmap $R/monmap --keyring $R/mon.keyring
  bg ceph-mon ceph-mon $C -i a -f
  waitfor ceph-mon 30 timeout 5 ceph $C mon stat || return 1
  # Wharf: creating the OSD before the monitor has its first osdmap races ("wrong fsid").
  waitfor osdmap 30 osdmap_ready "$C" || return 1
  local U=$(uuidgen) ID; ID=$(timeout 30 ceph $C osd new $U) || return 1
  ceph-osd $C -i $ID --mkfs --osd-uuid $U > $LOG/ceph-osd-mkfs.log 2>&1
  timeout 30 ceph $C osd crush add osd.$ID 1 root=default host=localhost >/dev/null 2>&1
  bg ceph-osd ceph-osd $C -i $ID -f
  # Wharf: an OSD sometimes fails to register ("wrong fsid") under load; fail fast and retry.
  waitfor ceph-osd 30 osd_up "$C" || return 1
  bg radosgw radosgw $C -n client.rgw.gw -f
  waitfor radosgw 120 http_is 200 http://127.0.0.1:7480/ || return 1
  timeout 60 radosgw-admin $C user create --uid=test --display-name=test --access-key=testkey --secret-key=testsecret >/dev/null
}
osdmap_ready() { timeout 5 ceph $1 osd stat 2>/dev/null | grep -q 'osds:'; }
osd_up() { timeout 5 ceph $1 osd stat 2>/dev/null | grep -q ' 1 up'; }
stop_pids() { # names...: stop the recorded processes of these services and wait for them
  local pids="" n p
  for n in "$@"; do [ -f $PIDS/$n.pid ] || continue; p=$(cat $PIDS/$n.pid); kill "$p" 2>/dev/null && pids="$pids $p"; rm -f $PIDS/$n.pid; done
  for _ in $(seq 1 150); do local a=0; for p in $pids; do kill -0 $p 2>/dev/null && a=1; done; [ $a = 0 ] && return 0; sleep 0.1; done
  # Wharf: radosgw sometimes ignores SIGTERM; a survivor would keep the port for the next run.
  for p in $pids; do kill -0 $p 2>/dev/null && { echo "killing $p with SIGKILL" >&2; kill -9 $p 2>/dev/null; }; done
  return 0; }
start_s3_with_retries() {
  local attempt
  for attempt in 1 2 3; do
    start_s3 && return 0
    echo "Ceph RGW start attempt $attempt failed; retrying" >&2
    stop_pids radosgw ceph-osd ceph-mon
  done
  return 1; }
start_s3moto() { bg moto $PY_BIN/moto_server -H 127.0.0.1 -p 5000; waitfor moto 30 http_is 200 http://127.0.0.1:5000/moto-api/; }
start_gcs() { bg gcs $PY_BIN/gcp-storage-emulator start --host 127.0.0.1 --port 9023 --in-memory -q; waitfor gcs 30 http_is 200 http://127.0.0.1:9023/; }
start_azure() {
  bg azurite node $D/npm/node_modules/azurite/dist/src/blob/main.js --blobHost 127.0.0.1 --blobPort 10000 \
     --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry --silent
  waitfor azurite 60 http_any http://127.0.0.1:10000/; }
start_swift() { # SAIO: memcached + account/container/object/proxy(tempauth,tempurl,slo,dlo,s3api) on 127.0.0.1:8080
  local S=$D/swift; rm -rf $S; mkdir -p $S/etc $S/node/sdb1; local E=$S/etc U=$(id -un)
  printf '[swift-hash]\nswift_hash_path_suffix = ci\nswift_hash_path_prefix = ci\n[storage-policy:0]\nname = gold\ndefault = yes\n' > $E/swift.conf
  for t in account:6212 container:6211 object:6210; do local n=${t%%:*} p=${t##*:}
    printf '[DEFAULT]\ndevices = %s\nmount_check = false\ndisable_fallocate = true\nbind_ip = 127.0.0.1\nbind_port = %s\nworkers = 0\nuser = %s\nswift_dir = %s\nlog_level = WARNING\n[pipeline:main]\npipeline = %s-server\n[app:%s-server]\nuse = egg:swift#%s\n' \
      $S/node $p $U $E $n $n $n > $E/$n-server.conf
    (cd $E && swift-ring-builder $n.builder create 8 1 1 && swift-ring-builder $n.builder add r1z1-127.0.0.1:$p/sdb1 1 && swift-ring-builder $n.builder rebalance) >/dev/null
  done
  cat > $E/proxy-server.conf <<EOC
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = 8080
workers = 0
user = $U
swift_dir = $E
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:s3api]
use = egg:swift#s3api
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11222
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
EOC
  bg memcached memcached -l 127.0.0.1 -p 11222 -U 0 -m 64 -u $U
  for s in account container object proxy; do bg swift-$s swift-$s-server $E/$s-server.conf; done
  waitfor swift 60 swift_ok; }
swift_ok() { local tok; tok=$(curl -sf -D - -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' http://127.0.0.1:8080/auth/v1.0 | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}' | tr -d '\r') && [ -n "$tok" ] &&
  [[ "$(curl -s -I -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $tok" http://127.0.0.1:8080/v1/AUTH_test)" =~ ^20[04]$ ]]; }

install_all() {
  if ! command -v radosgw >/dev/null || ! command -v swift-proxy-server >/dev/null || ! command -v memcached >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      radosgw ceph-mon ceph-osd ceph-common swift swift-proxy swift-object swift-container swift-account \
      memcached uuid-runtime curl >/dev/null || return 1
  fi
  "$PY_BIN/python3" -m pip install -q 'moto[server]' gcp-storage-emulator || return 1
  [ -f "$D/npm/node_modules/azurite/dist/src/blob/main.js" ] || npm install -s --prefix "$D/npm" azurite@3.35.0 >/dev/null || return 1
}
print_env() {
  cat <<EOV
export WHARF_TEST_S3_ENDPOINT=http://127.0.0.1:7480 WHARF_TEST_S3_ACCESS_KEY=testkey WHARF_TEST_S3_SECRET_KEY=testsecret
export WHARF_TEST_S3MOTO_ENDPOINT=http://127.0.0.1:5000
export WHARF_TEST_GCS_ENDPOINT=http://127.0.0.1:9023
export WHARF_TEST_AZURE_ENDPOINT=http://127.0.0.1:10000/devstoreaccount1 WHARF_TEST_AZURE_ACCOUNT=devstoreaccount1
export WHARF_TEST_AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export WHARF_TEST_SWIFT_AUTH_URL=http://127.0.0.1:8080/auth/v1.0 WHARF_TEST_SWIFT_USER=test:tester WHARF_TEST_SWIFT_KEY=testing
EOV
}

stop_all() { local names="" f
  for f in $PIDS/*.pid; do [ -f "$f" ] && names="$names $(basename "$f" .pid)"; done
  stop_pids $names; }

case "${1:-}" in
  install) install_all ;;
  env) print_env ;;
  start) shift; rc=0; for b in ${@:-s3 gcs azure swift}; do [ "$b" = s3 ] && b=s3_with_retries; start_$b || rc=1; done; exit $rc ;;
  stop) stop_all ;;
  *) echo "usage: $0 install | start [s3 s3moto gcs azure swift] | stop | env"; exit 2 ;;
esac
