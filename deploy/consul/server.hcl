# A Consul server (Consul 1.14.x, MPL-2.0; `make consul` builds it): run three (or five) of
# these on separate machines, one Raft cluster. The client agents (agent.hcl) join them.
# Name the machines consul-server-1..3 in DNS or /etc/hosts, or put their addresses below.
server = true
bootstrap_expect = 3
data_dir = "/var/lib/consul"
client_addr = "127.0.0.1"
bind_addr = "{{ GetPrivateIP }}"
retry_join = ["consul-server-1", "consul-server-2", "consul-server-3"]
ports {
  grpc = -1
  https = -1
}

# Raft timing at Consul's production setting (the default, 5, is for small dev machines):
# a lost leader is replaced after ~1 s of silence instead of ~5 s. Sidecars keep serving
# from their last view meanwhile; this bounds how long writes (registrations) wait.
performance {
  raft_multiplier = 1
}

# Servers do not need their own cached blocking queries here; sidecars read through their
# host's client agent, and each process's change feed is one blocking query that any server
# may answer (?stale), so reads spread over all servers, not only the leader.
rpc {
  enable_streaming = true
}
