// Where the agent learns the cluster from. All sources look alike to the
// main loop: poll() returns a new snapshot when something changed.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ipv4.h"

#include "cluster.h"
#include "common/result.h"

namespace skiff::agent {

class Source {
public:
    virtual ~Source() = default;
    // A snapshot when the source changed (or on the first call), nullopt
    // when nothing changed, an error when the source is unreadable or
    // malformed (the caller keeps its last good state and retries).
    virtual Result<std::optional<ClusterSpec>> poll() = 0;
    virtual std::string describe() const = 0;
};

// A file holding a kubectl-style List, re-read when its inode, size or
// modification time changes.
std::unique_ptr<Source> make_file_source(std::string path);

}  // namespace skiff::agent

namespace skiff::agent {

struct EtcdSourceOptions {
    std::vector<std::string> endpoints;  // http://HOST:PORT
    std::string prefix = "/skiff";
    std::string node_name;
    Ipv4 node_ip;
    Ipv4Prefix cluster_cidr;
    std::optional<Ipv4Prefix> pod_cidr;  // claimed from cluster_cidr when absent
    int pod_cidr_len = 24;
    int lease_ttl = 10;
};

// Nodes registered in etcd, each under a lease that expires when its agent
// dies. Registers this node (claiming a free PodCIDR atomically when none
// is configured), keeps its lease alive and watches the others.
//   <prefix>/nodes/<name>        {"name","ip","podCIDR"}  (leased)
//   <prefix>/podcidrs/<a.b.c.d-len>  owning node name  (sticky)
//   <prefix>/services/<ns>/<name>, <prefix>/endpointslices/<ns>/<name>
//                                Kubernetes Service / EndpointSlice JSON
Result<std::unique_ptr<Source>> make_etcd_source(EtcdSourceOptions opts);

}  // namespace skiff::agent
