// skiff-agent: one per node. Keeps the node map and routes in sync with the
// cluster, owns the uplink program, serves health and metrics.
#include <arpa/inet.h>
#include <malloc.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <utility>

#include "agent.h"
#include "startup.h"
#include <bpf/bpf.h>

#include "bpf/map_layout.h"
#include "bpf/pins.h"
#include "bpf/socklb.h"
#include "bpf/tc.h"
#include "common/files.h"
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
        if (a == "--from") from = argv[i + 1];
        else if (a == "--to") to = argv[i + 1];
        else return usage();
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
        if (a == "--config" && i + 1 < argc) config_path = argv[++i];
        else if (a.rfind("--config=", 0) == 0) config_path = a.substr(9);
        else return usage();
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

    // The node-wide datapath: maps, and the uplink's two programs.
    auto nl = Netlink::open();
    if (!nl) return log::error(nl.error().message), 1;
    auto uplink = nl->link(cfg->uplink);
    if (!uplink) return log::error("uplink " + cfg->uplink + ": " + uplink.error().message), 1;
    for (auto [program, hook] : {std::pair{bpf::Program::FromUplink, bpf::TcHook::Ingress},
                                 std::pair{bpf::Program::ToUplink, bpf::TcHook::Egress}}) {
        auto prog = bpf::pinned_program(program, cfg->pin_path);
        if (!prog) return log::error(prog.error().message), 1;
        if (auto s = bpf::tc_attach(uplink->ifindex, hook, prog->get()); !s)
            return log::error(s.error().message), 1;
    }
    // The datapath's view of this node (NodePort SNAT address).
    auto cookie = bpf::current_netns_cookie();
    if (!cookie) return log::error(cookie.error().message), 1;
    if (auto m = bpf::open_pinned_map(cfg->pin_path, SKIFF_MAP_CONFIG); m) {
        uint32_t zero = 0;
        skiff_config c{};
        c.node_ip = cfg->node_ip.be();
        c.netns_cookie = *cookie;
        c.cluster_net = cfg->cluster_cidr.network().be();
        c.cluster_mask = htonl(cfg->cluster_cidr.mask());
        // The range never holds the node's ephemeral ports: the node's
        // connections to other nodes' pods are not in the masquerade
        // table, and service SNAT toward remote backends uses the range.
        unsigned eph_lo = 32768, eph_hi = 60999;
        if (auto r = read_file("/proc/sys/net/ipv4/ip_local_port_range"); r)
            std::sscanf(r->c_str(), "%u %u", &eph_lo, &eph_hi);
        const auto& mq = cfg->masquerade;
        if (mq.enabled && mq.port_min <= eph_hi && mq.port_max >= eph_lo)
            return log::error("masquerade.portRange " + std::to_string(mq.port_min) + "-" + std::to_string(mq.port_max) +
                              " overlaps this node's ephemeral ports " + std::to_string(eph_lo) + "-" +
                              std::to_string(eph_hi) + " (net.ipv4.ip_local_port_range)"),
                   1;
        c.flags = mq.enabled ? SKIFF_CFG_F_MASQUERADE : 0;
        c.nat_port_min = mq.port_min;
        c.nat_port_max = mq.port_max;
        if (bpf_map_update_elem(m->get(), &zero, &c, BPF_ANY) != 0) return log::error("write skiff_config"), 1;
    } else {
        return log::error(m.error().message), 1;
    }
    // Host processes and host-network pods reach ClusterIPs by socket LB.
    if (!cfg->socket_lb_cgroup.empty()) {
        if (auto s = bpf::attach_socket_lb(cfg->pin_path, cfg->socket_lb_cgroup); !s)
            return log::error("socket LB: " + s.error().message), 1;
    }
    // Pods reach other nodes' addresses (not PodCIDRs) through the stack.
    if (auto s = write_sysctl("net/ipv4/ip_forward", "1"); !s) log::warn(s.error().message);

    const std::string source_name = source->describe();
    agent::Agent a(*cfg, std::move(source), agent::make_bpf_node_table(cfg->pin_path),
                   agent::make_kernel_route_table(uplink->ifindex));
    a.enable_services(agent::make_bpf_service_tables(cfg->pin_path), agent::make_bpf_ct_table(cfg->pin_path));
    a.enable_masquerade(agent::make_bpf_snat_table(cfg->pin_path));
    auto http = agent::HttpServer::start(cfg->listen, [&a](const std::string& p) { return a.handle_http(p); });
    if (!http) return log::error("health/metrics endpoint: " + http.error().message), 1;
    log::info("node " + cfg->node_name + " (" + cfg->node_ip.str() + ", uplink " + cfg->uplink + ") serving on " +
              cfg->listen + ", source " + source_name);

    // Kubernetes: once the PodCIDR is programmed (and the conflist written),
    // the node's NetworkUnavailable condition goes False.
    bool network_marked = started->kube == nullptr;
    auto next_mark = std::chrono::steady_clock::now();
    while (!g_stop) {
        a.tick();
        if (!network_marked && std::chrono::steady_clock::now() >= next_mark)
            if (auto cidr = a.local_pod_cidr()) {
                auto s = started->kube->set_network_available(cfg->node_name, "skiff-agent programmed PodCIDR " +
                                                                                  cidr->str());
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
