// skiffctl: inspect the live skiff datapath from its pinned maps.
#include <net/if.h>

#include "datapath/maps.h"
#include "cli.h"
#include "commands.h"

namespace skiff::ctl {
namespace {

using nlohmann::json;

std::string ifname_of(uint32_t ifindex) {
    char buf[IF_NAMESIZE] = {};
    return if_indextoname(ifindex, buf) ? buf : "";
}

Result<Output> endpoint_list(const Options& o, const std::vector<std::string>&) {
    auto m = datapath::EndpointMap::open(o.pin_path);
    if (!m) return explain(m.error(), o);
    auto eps = m->list();
    if (!eps) return explain(eps.error(), o);
    json doc = json::array();
    for (const auto& [ip, info] : *eps) {
        MacAddr pod{}, host{};
        std::copy(std::begin(info.pod_mac), std::end(info.pod_mac), pod.begin());
        std::copy(std::begin(info.host_mac), std::end(info.host_mac), host.begin());
        json flags = json::array();
        if (info.flags & SKIFF_EP_F_LOCAL) flags.push_back("local");
        doc.push_back({{"ip", ip.str()},
                       {"ifindex", info.ifindex},
                       {"ifname", ifname_of(info.ifindex)},
                       {"pod_mac", mac_str(pod)},
                       {"host_mac", mac_str(host)},
                       {"flags", flags}});
    }
    std::sort(doc.begin(), doc.end(), [](const json& a, const json& b) {
        return Ipv4::parse(a["ip"].get<std::string>())->value() < Ipv4::parse(b["ip"].get<std::string>())->value();
    });
    return Output{
        doc, [](const json& d) {
            std::vector<std::vector<std::string>> rows{{"IP", "IFINDEX", "DEVICE", "POD MAC", "HOST MAC", "FLAGS"}};
            for (const auto& e : d) {
                std::string flags;
                for (const auto& f : e["flags"]) flags += (flags.empty() ? "" : ",") + f.get<std::string>();
                rows.push_back({e["ip"], std::to_string(e["ifindex"].get<uint32_t>()), e["ifname"], e["pod_mac"],
                                e["host_mac"], flags});
            }
            return table(rows);
        }};
}

Result<Output> stats_show(const Options& o, const std::vector<std::string>&) {
    auto m = datapath::MetricsMap::open(o.pin_path);
    if (!m) return explain(m.error(), o);
    auto rows = m->read();
    if (!rows) return explain(rows.error(), o);
    json doc = json::array();
    for (const auto& r : *rows)
        doc.push_back({{"reason", std::string(datapath::reason_name(r.reason))},
                       {"reason_id", r.reason},
                       {"direction", std::string(datapath::dir_name(r.dir))},
                       {"drop", datapath::reason_is_drop(r.reason)},
                       {"packets", r.packets},
                       {"bytes", r.bytes}});
    return Output{doc, [](const json& d) {
                      std::vector<std::vector<std::string>> rows{{"REASON", "DIRECTION", "PACKETS", "BYTES"}};
                      for (const auto& e : d)
                          rows.push_back({e["reason"], e["direction"], std::to_string(e["packets"].get<uint64_t>()),
                                          std::to_string(e["bytes"].get<uint64_t>())});
                      if (d.empty()) return std::string("no packets counted yet\n");
                      return table(rows);
                  }};
}

}  // namespace
}  // namespace skiff::ctl

int main(int argc, char** argv) {
    using namespace skiff::ctl;
    std::vector<Noun> nouns = {
        {"endpoint", {{"list", "", endpoint_list}}, "list"},
        {"stats", {{"show", "", stats_show}}, "show"},
    };
    for (auto& n : trace_nouns()) nouns.push_back(std::move(n));
    for (auto* nouns_of : {map_nouns, net_nouns})
        for (auto& n : nouns_of()) nouns.push_back(std::move(n));
    return run_cli(argc, argv, nouns);
}
