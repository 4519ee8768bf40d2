# A Consul client agent next to the sidecars (Consul 1.14.x, MPL-2.0; `make consul` builds it).
data_dir = "/var/lib/consul"
client_addr = "127.0.0.1"
bind_addr = "{{ GetPrivateIP }}"
retry_join = ["consul-server-1", "consul-server-2", "consul-server-3"]
ports {
  grpc = -1
  https = -1
}
