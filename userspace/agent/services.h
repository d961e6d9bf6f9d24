// Services and EndpointSlices (Kubernetes form) turned into frontends and
// backends for the datapath.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster.h"

namespace skiff::agent {

struct L4Addr {
    Ipv4 ip;
    uint16_t port = 0;  // host order
    uint8_t proto = 0;  // IPPROTO_TCP / IPPROTO_UDP
    auto operator<=>(const L4Addr&) const = default;
    std::string str() const;
};

struct ServicePort {
    std::string name;                 // "<namespace>/<service>:<port name>"
    L4Addr frontend;                  // VIP:port/proto
    std::vector<L4Addr> backends;     // ready: get new connections
    std::vector<L4Addr> terminating;  // serving but terminating: keep existing ones
    bool affinity = false;            // sessionAffinity: ClientIP
    bool maglev = false;              // annotation skiff.io/lb-algorithm: maglev
    bool operator==(const ServicePort&) const = default;
    uint32_t affinity_timeout = 10800;
};

struct ServicePlan {
    std::vector<ServicePort> ports;     // sorted by frontend, no duplicates
    std::vector<std::string> problems;  // skipped objects and why
};

inline constexpr size_t kMaxBackendsPerService = 65535;  // u16 slot count
inline constexpr const char* kLbAlgorithmAnnotation = "skiff.io/lb-algorithm";

// What a node needs to know to plan NodePorts.
struct NodeContext {
    std::optional<Ipv4> node_ip;               // NodePort frontends listen here
    std::optional<Ipv4Prefix> local_pod_cidr;  // backends here are "local"
    bool operator==(const NodeContext&) const = default;
};

// Frontend -> the service ("<namespace>/<name>") holding it.
using FrontendOwners = std::map<L4Addr, std::string>;

// A service with any invalid field is skipped whole (never half-programmed).
// Of services claiming one frontend, a service gets all its frontends or
// none, and they are served in this order: first the services holding
// (in `held`: programmed) all the frontends they claim, then those holding
// some, then the rest; within each, the older by metadata.creationTimestamp
// (one without comes after), then namespace/name. So a newcomer never takes
// a frontend away from a live service, whatever its name.
// With a node IP, NodePort/LoadBalancer services also get a frontend on
// node IP:nodePort (externalTrafficPolicy Local: only local backends).
ServicePlan plan_services(const ClusterSpec& spec, const NodeContext& node = {}, const FrontendOwners& held = {});

// What changed in a plan: frontends added or changed, frontends gone.
struct PlanDelta {
    std::vector<ServicePort> upserts;
    std::vector<L4Addr> removed;
    bool empty() const { return upserts.empty() && removed.empty(); }
};

namespace detail {
struct SliceEndpoints {
    // per slice port (name, proto) -> port number
    std::vector<std::pair<std::pair<std::string, uint8_t>, uint16_t>> ports;
    std::vector<std::pair<Ipv4, int>> addrs;  // 0 ready, 1 terminating (serving), 2 neither
};
}  // namespace detail

// plan_services, kept up to date across snapshots at the cost of what
// changed: a Service is planned again only when it, one of its
// EndpointSlices or the node context changed (sources keep an unchanged
// object's pointer, and say which keys changed when they number their
// snapshots; without that, finding them is a pointer comparison per
// object), and frontend clashes are settled again only among
// the services that share frontends with a changed one. The result is
// what plan_services would return for the same snapshot, given as `held`
// the owners of this planner's plan before the update (what it holds).
class ServicePlanner {
public:
    ServicePlanner() = default;
    // Starts from frontends held by these services (plan_services' `held`).
    explicit ServicePlanner(FrontendOwners held) : seed_(std::move(held)) {}
    PlanDelta update(const ClusterSpec& spec, const NodeContext& node);
    ServicePlan plan() const;  // the whole current plan
    std::vector<std::string> problems() const;
    size_t frontends() const { return out_.size(); }
    const FrontendOwners& owners() const { return owner_; }
    size_t conflicts() const { return clashes_.size(); }  // services skipped for a frontend held by another

private:
    struct Slice {
        ObjectRef obj;
        std::string service;  // "<namespace>/<service>", empty without the label
        std::optional<detail::SliceEndpoints> eps;
    };
    struct Candidate {
        ObjectRef obj;
        std::vector<ServicePort> ports;  // claimed only without a problem
        std::string problem;
        std::optional<int64_t> created;  // metadata.creationTimestamp
    };
    void replan(const ClusterSpec& spec, const std::set<std::string>& dirty, PlanDelta& d);

    std::optional<NodeContext> node_;
    uint64_t generation_ = 0;                                 // of the snapshot planned last (0: unknown)
    std::map<std::string, Slice> slices_;                     // slice key -> parsed
    std::map<std::string, std::string> slice_problems_;       // slice key -> why skipped
    std::map<std::string, std::set<std::string>> slices_of_;  // service -> slice keys
    std::map<std::string, Candidate> services_;               // service -> its frontends
    std::set<std::string> problem_services_;                  // services skipped whole
    std::map<L4Addr, std::set<std::string>> claims_;          // frontend -> services asking for it
    FrontendOwners owner_;                                    // frontend -> service holding it
    FrontendOwners seed_;                                     // held before the first update
    std::map<std::string, std::string> clashes_;              // service -> why it lost a frontend
    std::map<L4Addr, ServicePort> out_;                       // the plan
};

}  // namespace skiff::agent
