#include "startup.h"

#include <chrono>
#include <thread>

#include "common/files.h"
#include "common/log.h"
#include "net/rtnetlink.h"

namespace skiff::agent {
namespace {

// A source whose first poll answers a snapshot already taken from it.
class PrimedSource final : public Source {
public:
    PrimedSource(std::unique_ptr<Source> inner, ClusterSpec first)
        : inner_(std::move(inner)), first_(std::move(first)) {}
    Result<std::optional<ClusterSpec>> poll() override {
        if (!first_) return inner_->poll();
        std::optional<ClusterSpec> f = std::move(first_);
        first_.reset();
        return f;
    }
    std::string describe() const override { return inner_->describe(); }

private:
    std::unique_ptr<Source> inner_;
    std::optional<ClusterSpec> first_;
};

// The device that holds addr.
Result<std::string> device_with(Ipv4 addr) {
    SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open());
    SKIFF_ASSIGN_OR_RETURN(auto links, nl.links());
    for (const auto& l : links) {
        auto addrs = nl.addresses(l.ifindex);
        if (!addrs) continue;
        for (const auto& a : *addrs)
            if (a.addr() == addr) return l.name;
    }
    return Error{ENODEV, "no device holds " + addr.str()};
}

Result<StartedSource> kubernetes_source(AgentConfig& cfg, const std::atomic<bool>& stop) {
    const auto& kc = *cfg.kubernetes_source;
    auto kube = kc.kubeconfig.empty() ? in_cluster_config() : load_kubeconfig(kc.kubeconfig, kc.context);
    if (!kube) return Error{kube.error().code, "Kubernetes credentials: " + kube.error().message};
    KubeSourceOptions opts;
    opts.kube = std::move(*kube);
    SKIFF_ASSIGN_OR_RETURN(auto made, make_kubernetes_source(std::move(opts)));
    StartedSource out;
    out.kube = made.get();
    out.source = std::move(made);
    if (cfg.node_ip_known && !cfg.uplink.empty()) return out;

    // Who we are: this node's object, as the API server has it.
    auto next_log = std::chrono::steady_clock::now();
    std::optional<ClusterSpec> first;
    while (!stop) {
        auto snap = out.source->poll();
        if (snap && *snap) {
            first = std::move(**snap);
            bool found = false;
            for (const auto& n : first->nodes)
                if (n.name == cfg.node_name && n.ip) {
                    if (!cfg.node_ip_known) cfg.node_ip = *n.ip;
                    found = true;
                }
            if (found) break;
        }
        if (std::chrono::steady_clock::now() >= next_log) {
            log::info("waiting for node " + cfg.node_name + " and its InternalIP in the API (" +
                      (snap ? out.source->describe() : snap.error().message) + ")");
            next_log = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (stop) return Error{EINTR, "stopped while waiting for node " + cfg.node_name};
    cfg.node_ip_known = true;
    if (cfg.uplink.empty()) {
        auto dev = device_with(cfg.node_ip);
        if (!dev) return Error{dev.error().code, "uplink of node " + cfg.node_name + ": " + dev.error().message};
        cfg.uplink = *dev;
    }
    out.source = std::make_unique<PrimedSource>(std::move(out.source), std::move(*first));
    return out;
}

}  // namespace

Result<StartedSource> start_source(AgentConfig& cfg, const std::atomic<bool>& stop) {
    if (cfg.kubernetes_source) return kubernetes_source(cfg, stop);
    StartedSource out;
    if (cfg.etcd_source) {
        SKIFF_ASSIGN_OR_RETURN(out.source, make_etcd_source({cfg.etcd_source->endpoints, cfg.etcd_source->prefix,
                                                             cfg.node_name, cfg.node_ip, cfg.cluster_cidr, cfg.pod_cidr,
                                                             cfg.pod_cidr_size, cfg.etcd_source->lease_ttl}));
    } else {
        out.source = make_file_source(*cfg.file_source);
    }
    return out;
}

Status install_cni(const std::string& from, const std::string& to_dir) {
    SKIFF_ASSIGN_OR_RETURN(std::string bytes, read_file(from, size_t{1} << 30));
    auto slash = from.find_last_of('/');
    std::string to = to_dir + "/" + (slash == std::string::npos ? from : from.substr(slash + 1));
    SKIFF_TRY(mkdir_p(to_dir, 0755));
    SKIFF_TRY(write_file_atomic(to, bytes, 0755));
    log::info("installed " + from + " as " + to);
    return ok();
}

}  // namespace skiff::agent
