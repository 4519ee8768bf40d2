# A Consul client agent next to the sidecars (Consul 1.14.x, MPL-2.0; `make consul` builds it).
#
# What grpcmesh's discovery expects of it (sdk/grpcmesh/sdk/discovery/consul.py):
# every process that resolves through this agent (sidecar, gateway, an app in direct
# mode) holds at most max_reads + 1 = 4 HTTP connections to it (one blocking query on
# /v1/health/state/any, the change feed, plus up to 3 short reads), and the sidecar's
# registration client at most 2 more, whatever the number of services it watches.
data_dir = "/var/lib/consul"
client_addr = "127.0.0.1"
bind_addr = "{{ GetPrivateIP }}"
retry_join = ["consul-server-1", "consul-server-2", "consul-server-3"]
ports {
  grpc = -1
  https = -1
}

limits {
  # Counted per client IP, and every local process connects from 127.0.0.1: this is a
  # budget for the whole host. 6 per sidecar -> room for ~80 sidecars plus operators'
  # tools on one host (Consul's default, 200, fits ~30). Past it the agent answers 429
  # to every local client alike, deregistrations included: size it, do not disable it.
  http_max_conns_per_client = 512
  # rpc_rate / rpc_max_burst would cap the RPCs this agent sends to the servers (default:
  # unlimited). Not set: a process's burst is already bounded by its max_reads, and a
  # capped agent fails reads with "rate limit exceeded" rather than queueing them.
}

# Streaming backend: blocking health reads (?index) of other clients on this host (an app's
# own watches, consul-template) share one subscription per service to the servers instead
# of one blocking RPC each. grpcmesh's reads carry no ?index and its change feed
# (/v1/health/state/any) has no streaming form: each process's feed is one blocking RPC to
# the servers, re-issued every `wait` (30 s) or on any check change in the datacenter.
# On by default since 1.10; servers need rpc { enable_streaming = true } (the default).
use_streaming_backend = true

# Not used: the agent cache (?cached). A service the change feed reports changed must be
# read at the new index, not from a cache entry that may still be older; so no `cache`
# block here.
