// skiff-agent: one per node. Keeps the node map and routes in sync with the
// cluster, owns the uplink program, serves health and metrics.
#include <malloc.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <thread>
#include <utility>

#include "agent.h"
#include "node_datapath.h"
#include "startup.h"

#include "datapath/socklb.h"
#include "common/log.h"
#include "net/rtnetlink.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

int usage() {
    std::cerr << "usage: skiff-agent --config FILE\n"
                 "       skiff-agent install-cni --from FILE --to DIR\n";
    return 2;
}

int install_cni(int argc, char** argv) {
    std::string from, to;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--from")
            from = argv[i + 1];
        else if (a == "--to")
            to = argv[i + 1];
        else
            return usage();
    }
    if (from.empty() || to.empty() || argc % 2 != 0) return usage();
    skiff::log::set_prefix("skiff-agent");
    if (auto s = skiff::agent::install_cni(from, to); !s) return skiff::log::error(s.error().message), 1;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace skiff;
    if (argc > 1 && std::string(argv[1]) == "install-cni") return install_cni(argc, argv);
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--config" && i + 1 < argc)
            config_path = argv[++i];
        else if (a.rfind("--config=", 0) == 0)
            config_path = a.substr(9);
        else
            return usage();
    }
    if (config_path.empty()) return usage();
    log::set_prefix("skiff-agent");
    log::set_level(log::Level::Info);
    // Snapshots free many small objects at once; glibc's fast bins would
    // defer merging them to the next large allocation, which then stalls
    // for milliseconds in the middle of a reconcile. Merge on free instead.
    mallopt(M_MXFAST, 0);

    auto cfg = agent::load_agent_config(config_path);
    if (!cfg) {
        log::error(cfg.error().message);
        return 1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    auto started = agent::start_source(*cfg, g_stop);
    if (!started) return log::error(started.error().message), 1;
    std::unique_ptr<agent::Source> source = std::move(started->source);

    // The node-wide datapath: the uplink's and the tunnel's programs, the
    // node's entry in skiff_config.
    auto dp = agent::setup_node_datapath(*cfg);
    if (!dp) return log::error(dp.error().message), 1;
    cfg->mtu = dp->pod_mtu;
    // Host processes and host-network pods reach ClusterIPs by socket LB.
    if (!cfg->socket_lb_cgroup.empty()) {
        if (auto s = datapath::attach_socket_lb(cfg->pin_path, cfg->socket_lb_cgroup); !s)
            return log::error("socket LB: " + s.error().message), 1;
    }
    // Pods reach other nodes' addresses (not PodCIDRs) through the stack.
    if (auto s = write_sysctl("net/ipv4/ip_forward", "1"); !s) log::warn(s.error().message);

    const std::string source_name = source->describe();
    agent::Agent a(*cfg, std::move(source), agent::make_bpf_node_table(cfg->pin_path),
                   agent::make_kernel_route_table(dp->uplink_ifindex, dp->tunnel_ifindex));
    a.set_routing(dp->routing);
    a.enable_services(agent::make_bpf_service_tables(cfg->pin_path), agent::make_bpf_ct_table(cfg->pin_path));
    a.enable_masquerade(agent::make_bpf_snat_table(cfg->pin_path));
    a.read_datapath(agent::make_bpf_datapath_reader(cfg->pin_path));
    auto http = agent::HttpServer::start(cfg->listen, [&a](const std::string& p) { return a.handle_http(p); });
    if (!http) return log::error("health/metrics endpoint: " + http.error().message), 1;
    log::info("node " + cfg->node_name + " (" + cfg->node_ip.str() + ", uplink " + cfg->uplink + ", routing " +
              std::string(agent::routing_mode_name(cfg->routing_mode)) + ") serving on " + cfg->listen + ", source " +
              source_name);

    // Kubernetes: once the PodCIDR is programmed (and the conflist written),
    // the node's NetworkUnavailable condition goes False.
    bool network_marked = started->kube == nullptr;
    auto next_mark = std::chrono::steady_clock::now();
    while (!g_stop) {
        a.tick();
        if (!network_marked && std::chrono::steady_clock::now() >= next_mark)
            if (auto cidr = a.local_pod_cidr()) {
                auto s = started->kube->set_network_available(cfg->node_name,
                                                              "skiff-agent programmed PodCIDR " + cidr->str());
                network_marked = s.ok();
                if (!s) log::warn("cannot mark node " + cfg->node_name + " network available: " + s.error().message);
                next_mark = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // Leave the datapath as it is: pods keep talking while we are gone.
    log::info("stopping; datapath left in place");
    return 0;
}
