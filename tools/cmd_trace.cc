// skiffctl trace: a synthetic packet through the live programs and maps
// (BPF_PROG_TEST_RUN in trace mode: nothing on the wire, no state changed);
// skiffctl monitor: drop and trace events from the datapath's ring buffer.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <iostream>

#include "datapath/maps.h"
#include "datapath/pins.h"
#include "datapath/tc.h"
#include "cli.h"
#include "commands.h"
#include "net/rtnetlink.h"

namespace skiff::ctl {
namespace {

using nlohmann::json;
using Bytes = std::vector<uint8_t>;

uint16_t csum(const uint8_t* p, size_t n, uint32_t sum = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t(p[i]) << 8) | p[i + 1];
    if (n & 1) sum += uint32_t(p[n - 1]) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

void put16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }

struct Endpoint {
    Ipv4 ip;
    uint16_t port = 0;
};

Result<Endpoint> parse_hostport(const std::string& s) {
    auto colon = s.find(':');
    auto ip = Ipv4::parse(s.substr(0, colon));
    if (!ip) return ip.error();
    Endpoint e{*ip, 0};
    if (colon != std::string::npos) {
        int p = std::atoi(s.c_str() + colon + 1);
        if (p <= 0 || p > 65535) return Error::invalid("bad port in '" + s + "'");
        e.port = static_cast<uint16_t>(p);
    }
    return e;
}

// Ethernet + IPv4 + TCP SYN / UDP / ICMP echo, checksums complete.
Bytes build_packet(const MacAddr& smac, const MacAddr& dmac, const Endpoint& src, const Endpoint& dst, uint8_t proto,
                   uint8_t tcp_flags) {
    size_t l4len = proto == IPPROTO_TCP ? 20 : 8;
    const size_t payload = 16;
    Bytes f(14 + 20 + l4len + payload, 0);
    std::memcpy(&f[0], dmac.data(), 6);
    std::memcpy(&f[6], smac.data(), 6);
    put16(&f[12], ETH_P_IP);
    uint8_t* ip = &f[14];
    ip[0] = 0x45;
    put16(ip + 2, static_cast<uint16_t>(20 + l4len + payload));
    put16(ip + 4, 0x5c1f);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = proto;
    uint32_t s = htonl(src.ip.value()), d = htonl(dst.ip.value());
    std::memcpy(ip + 12, &s, 4);
    std::memcpy(ip + 16, &d, 4);
    put16(ip + 10, csum(ip, 20));
    uint8_t* l4 = ip + 20;
    for (size_t i = 0; i < payload; ++i) l4[l4len + i] = static_cast<uint8_t>('a' + i);
    uint32_t pseudo = (src.ip.value() >> 16) + (src.ip.value() & 0xffff) + (dst.ip.value() >> 16) +
                      (dst.ip.value() & 0xffff) + proto + uint32_t(l4len + payload);
    if (proto == IPPROTO_TCP) {
        put16(l4, src.port);
        put16(l4 + 2, dst.port);
        put16(l4 + 4, 0x0001);  // seq
        l4[12] = 0x50;
        l4[13] = tcp_flags;
        put16(l4 + 14, 64240);
        put16(l4 + 16, csum(l4, l4len + payload, pseudo));
    } else if (proto == IPPROTO_UDP) {
        put16(l4, src.port);
        put16(l4 + 2, dst.port);
        put16(l4 + 4, static_cast<uint16_t>(l4len + payload));
        put16(l4 + 6, csum(l4, l4len + payload, pseudo));
    } else {
        l4[0] = 8;  // echo request
        put16(l4 + 4, src.port ? src.port : 1);
        put16(l4 + 6, 1);
        put16(l4 + 2, csum(l4, l4len + payload));
    }
    return f;
}

struct Parsed {
    std::string src, dst;
    uint16_t sport = 0, dport = 0;
};

Parsed parse_out(const Bytes& f, uint8_t proto) {
    Parsed p;
    if (f.size() < 34) return p;
    const uint8_t* ip = &f[14];
    uint32_t s, d;
    std::memcpy(&s, ip + 12, 4);
    std::memcpy(&d, ip + 16, 4);
    p.src = Ipv4::from_be(s).str();
    p.dst = Ipv4::from_be(d).str();
    size_t off = 14 + (ip[0] & 0xf) * 4;
    if (f.size() >= off + 8) {
        if (proto == IPPROTO_ICMP) {
            p.sport = static_cast<uint16_t>((f[off + 4] << 8) | f[off + 5]);
        } else {
            p.sport = static_cast<uint16_t>((f[off] << 8) | f[off + 1]);
            p.dport = static_cast<uint16_t>((f[off + 2] << 8) | f[off + 3]);
        }
    }
    return p;
}

std::string ifname_of(uint32_t ifindex) {
    char buf[IF_NAMESIZE] = {};
    return if_indextoname(ifindex, buf) ? buf : "";
}

// The outer header a traced packet would have been sent with: this node's
// address (skiff_config) to the remote node, on the tunnel device's port.
json encapsulation(const std::string& pin_path, const skiff_trace_result& t) {
    json outer = {{"dst", Ipv4::from_be(t.tunnel_remote).str()}, {"src", "?"}};
    if (auto fd = datapath::open_pinned_map(pin_path, SKIFF_MAP_CONFIG); fd) {
        uint32_t zero = 0;
        skiff_config c{};
        if (bpf_map_lookup_elem(fd->get(), &zero, &c) == 0) {
            outer["src"] = Ipv4::from_be(c.node_ip).str();
            if (auto nl = Netlink::open(); nl && c.tunnel_ifindex)
                if (auto vx = nl->vxlan(static_cast<int>(c.tunnel_ifindex)); vx) outer["dport"] = vx->port;
        }
    }
    return {{"type", "vxlan"}, {"vni", t.tunnel_vni}, {"remote", outer["dst"]}, {"outer", outer}};
}

Result<Output> trace_run(const Options& o, const std::vector<std::string>& args) {
    SKIFF_ASSIGN_OR_RETURN(auto fl, parse_flags(args, {"from", "to", "proto", "flags", "dev"}));
    if (!fl.count("from") || !fl.count("to"))
        return Error::invalid(
            "usage: skiffctl trace --from IP[:PORT] --to IP[:PORT] [--proto tcp|udp|icmp] "
            "[--flags syn|ack|fin|rst] [--dev DEVICE]");
    SKIFF_ASSIGN_OR_RETURN(Endpoint src, parse_hostport(fl["from"]));
    SKIFF_ASSIGN_OR_RETURN(Endpoint dst, parse_hostport(fl["to"]));
    std::string ps = fl.count("proto") ? fl["proto"] : "tcp";
    uint8_t proto = ps == "tcp" ? IPPROTO_TCP : ps == "udp" ? IPPROTO_UDP : ps == "icmp" ? IPPROTO_ICMP : 0;
    if (!proto) return Error::invalid("--proto must be tcp, udp or icmp");
    uint8_t flags = 0x02;  // SYN
    if (fl.count("flags")) {
        static const std::map<std::string, uint8_t> names = {
            {"syn", 0x02}, {"ack", 0x10}, {"fin", 0x11}, {"rst", 0x04}};
        auto it = names.find(fl["flags"]);
        if (it == names.end()) return Error::invalid("--flags must be syn, ack, fin or rst");
        flags = it->second;
    }
    if (!src.port) src.port = 40000;
    if (!dst.port && proto != IPPROTO_ICMP) return Error::invalid("--to needs a port for tcp and udp");

    // Where the packet enters: the source pod's host veth, or --dev.
    auto eps = datapath::EndpointMap::open(o.pin_path);
    if (!eps) return explain(eps.error(), o);
    int ifindex = 0;
    MacAddr smac{0x02, 0, 0, 0, 0, 1}, dmac{};
    std::string hook;
    if (fl.count("dev")) {
        SKIFF_ASSIGN_OR_RETURN(auto nl, Netlink::open());
        SKIFF_ASSIGN_OR_RETURN(auto link, nl.link(fl["dev"]));
        ifindex = link.ifindex;
        dmac = link.mac;
        hook = "tc ingress of " + link.name;
    } else {
        SKIFF_ASSIGN_OR_RETURN(auto ep, eps->lookup(src.ip));
        if (!ep) return Error::invalid(src.ip.str() + " is not a pod on this node: give --dev to trace from a device");
        ifindex = static_cast<int>(ep->ifindex);
        std::memcpy(smac.data(), ep->pod_mac, 6);
        std::memcpy(dmac.data(), ep->host_mac, 6);
        hook = "tc ingress of " + ifname_of(ep->ifindex) + " (pod " + src.ip.str() + ")";
    }
    SKIFF_ASSIGN_OR_RETURN(uint32_t prog_id, datapath::tc_attached_id(ifindex, datapath::TcHook::Ingress));
    if (!prog_id) return Error{ENOENT, "no skiff program on the " + hook};
    UniqueFd prog(bpf_prog_get_fd_by_id(prog_id));
    if (!prog.valid()) return explain(Error::errno_("program " + std::to_string(prog_id)), o);
    SKIFF_ASSIGN_OR_RETURN(UniqueFd trace_map, datapath::open_pinned_map(o.pin_path, SKIFF_MAP_TRACE));

    Bytes in = build_packet(smac, dmac, src, dst, proto, flags), out(in.size() + 256);
    __sk_buff ctx{};
    ctx.ifindex = static_cast<uint32_t>(ifindex);
    ctx.mark = SKIFF_TRACE_MARK;
    LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = in.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(in.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
    uint32_t zero = 0;
    skiff_trace_result before{}, t{};
    bpf_map_lookup_elem(trace_map.get(), &zero, &before);
    if (int err = bpf_prog_test_run_opts(prog.get(), &topts); err)
        return Error::os(-err, "run the program (BPF_PROG_TEST_RUN)");
    out.resize(topts.data_size_out);
    if (bpf_map_lookup_elem(trace_map.get(), &zero, &t) != 0 || t.seq == before.seq)
        return Error{EIO, "the program left no trace result (an older datapath without trace mode?)"};

    json doc;
    doc["hook"] = hook;
    doc["prog_id"] = prog_id;
    const int action = static_cast<int>(topts.retval);
    doc["verdict"] = action == TC_ACT_REDIRECT ? "redirect" : action == TC_ACT_SHOT ? "drop" : "pass";
    doc["reason"] = std::string(datapath::reason_name(t.reason));
    doc["drop"] = datapath::reason_is_drop(t.reason) && action == TC_ACT_SHOT;
    if (action == TC_ACT_REDIRECT && t.redirect_ifindex)
        doc["redirect"] = {{"ifindex", t.redirect_ifindex},
                           {"device", ifname_of(t.redirect_ifindex)},
                           {"into", (t.flags & SKIFF_TRACE_F_REDIRECT_PEER) ? "peer namespace" : "device egress"}};
    if (t.flags & SKIFF_TRACE_F_BACKEND) {
        json b = {{"id", t.backend_id}};
        if (auto fd = datapath::open_pinned_map(o.pin_path, SKIFF_MAP_BACKENDS); fd) {
            skiff_l4_addr be{};
            if (bpf_map_lookup_elem(fd->get(), &t.backend_id, &be) == 0)
                b["address"] = Ipv4::from_be(be.ip).str() + ":" + std::to_string(ntohs(be.port));
        }
        doc["backend"] = b;
    }
    if (t.flags & SKIFF_TRACE_F_TUNNEL) doc["encapsulation"] = encapsulation(o.pin_path, t);
    doc["new_connection"] = (t.flags & SKIFF_TRACE_F_NEW) != 0;
    Parsed pin = parse_out(in, proto), pout = parse_out(out, proto);
    json xl = json::array();
    if (action != TC_ACT_SHOT) {
        if (pin.src != pout.src) xl.push_back({{"field", "source"}, {"from", pin.src}, {"to", pout.src}});
        if (pin.dst != pout.dst) xl.push_back({{"field", "destination"}, {"from", pin.dst}, {"to", pout.dst}});
        if (pin.sport != pout.sport) xl.push_back({{"field", "source port"}, {"from", pin.sport}, {"to", pout.sport}});
        if (pin.dport != pout.dport)
            xl.push_back({{"field", "destination port"}, {"from", pin.dport}, {"to", pout.dport}});
    }
    doc["translations"] = xl;
    doc["packet_in"] = {{"src", pin.src}, {"dst", pin.dst}, {"sport", pin.sport}, {"dport", pin.dport}, {"proto", ps}};
    doc["packet_out"] = {{"src", pout.src}, {"dst", pout.dst}, {"sport", pout.sport}, {"dport", pout.dport}};
    return Output{doc, [](const json& d) {
                      std::string s = "hook:     " + d["hook"].get<std::string>() + "\n";
                      s += "verdict:  " + d["verdict"].get<std::string>() + " (" + d["reason"].get<std::string>() +
                           ")\n";
                      for (const auto& x : d["translations"])
                          s += "rewrite:  " + x["field"].get<std::string>() + " " + x["from"].dump() + " -> " +
                               x["to"].dump() + "\n";
                      if (d.contains("backend"))
                          s += "backend:  #" + std::to_string(d["backend"]["id"].get<uint32_t>()) + " " +
                               d["backend"].value("address", "") + "\n";
                      if (d.contains("redirect"))
                          s += "to:       " + d["redirect"]["device"].get<std::string>() + " (" +
                               d["redirect"]["into"].get<std::string>() + ")\n";
                      if (d.contains("encapsulation")) {
                          const auto& e = d["encapsulation"];
                          s += "encap:    vxlan vni " + std::to_string(e["vni"].get<uint32_t>()) + ", outer " +
                               e["outer"]["src"].get<std::string>() + " -> " + e["outer"]["dst"].get<std::string>();
                          if (e["outer"].contains("dport"))
                              s += " udp dport " + std::to_string(e["outer"]["dport"].get<unsigned>());
                          s += "\n";
                      }
                      return s;
                  }};
}

std::atomic<bool> g_stop{false};

struct MonitorCtx {
    const Options* o;
    std::string type, reason;
    std::optional<Ipv4> endpoint;
    long remaining = -1;
};

int on_event(void* vctx, void* data, size_t size) {
    auto* c = static_cast<MonitorCtx*>(vctx);
    if (size < sizeof(skiff_event)) return 0;
    skiff_event e;
    std::memcpy(&e, data, sizeof(e));
    std::string type = e.type == SKIFF_EVENT_DROP ? "drop" : "trace";
    std::string reason(datapath::reason_name(e.reason));
    if (!c->type.empty() && c->type != type) return 0;
    if (!c->reason.empty() && c->reason != reason) return 0;
    if (c->endpoint && Ipv4::from_be(e.saddr) != *c->endpoint && Ipv4::from_be(e.daddr) != *c->endpoint) return 0;
    json j = {{"type", type},
              {"reason", reason},
              {"direction", std::string(datapath::dir_name(e.dir))},
              {"ifindex", e.ifindex},
              {"device", ifname_of(e.ifindex)},
              {"src", Ipv4::from_be(e.saddr).str()},
              {"dst", Ipv4::from_be(e.daddr).str()},
              {"sport", ntohs(e.sport)},
              {"dport", ntohs(e.dport)},
              {"proto", e.proto},
              {"len", e.len},
              {"ts_ns", e.ts_ns}};
    if (c->o->json) {
        std::cout << j.dump() << std::endl;
    } else {
        std::cout << type << " " << reason << " " << j["direction"].get<std::string>() << " on "
                  << j["device"].get<std::string>() << ": " << j["src"].get<std::string>() << ":" << ntohs(e.sport)
                  << " -> " << j["dst"].get<std::string>() << ":" << ntohs(e.dport) << " proto " << int(e.proto)
                  << " len " << e.len << std::endl;
    }
    if (c->remaining > 0 && --c->remaining == 0) g_stop = true;
    return 0;
}

void on_signal(int) { g_stop = true; }

Result<Output> monitor_run(const Options& o, const std::vector<std::string>& args) {
    SKIFF_ASSIGN_OR_RETURN(auto fl, parse_flags(args, {"type", "reason", "endpoint", "count"}));
    MonitorCtx c{&o, fl.count("type") ? fl["type"] : "", fl.count("reason") ? fl["reason"] : "", std::nullopt, -1};
    if (!c.type.empty() && c.type != "drop" && c.type != "trace") return Error::invalid("--type must be drop or trace");
    if (fl.count("endpoint")) {
        SKIFF_ASSIGN_OR_RETURN(Ipv4 ip, Ipv4::parse(fl["endpoint"]));
        c.endpoint = ip;
    }
    if (fl.count("count")) c.remaining = std::atol(fl["count"].c_str());
    auto fd = datapath::open_pinned_map(o.pin_path, SKIFF_MAP_EVENTS);
    if (!fd) return explain(fd.error(), o);
    ring_buffer* rb = ring_buffer__new(fd->get(), on_event, &c, nullptr);
    if (!rb) return Error::errno_("open the event ring buffer");
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    if (!o.json) std::cerr << "monitoring " << o.pin_path << " (Ctrl-C to stop)" << std::endl;
    while (!g_stop) {
        int n = ring_buffer__poll(rb, 200);
        if (n < 0 && n != -EINTR) break;
    }
    ring_buffer__free(rb);
    Output out;
    out.streamed = true;
    return out;
}

}  // namespace

std::vector<Noun> trace_nouns() {
    return {
        {"trace",
         {{"run", "--from IP[:PORT] --to IP[:PORT] [--proto tcp|udp|icmp] [--flags syn|ack|fin|rst] [--dev DEV]",
           trace_run}},
         "run"},
        {"monitor",
         {{"events", "[--type drop|trace] [--reason NAME] [--endpoint IP] [--count N]", monitor_run}},
         "events"},
    };
}

}  // namespace skiff::ctl
