// The text renderers of map_text.h.
#include "map_text.h"

#include <cstdint>
#include <vector>

#include "cli.h"

namespace skiff::ctl {

using nlohmann::json;

namespace {

using Rows = std::vector<std::vector<std::string>>;

std::string joined(const json& flags) {
    std::string s;
    for (const auto& f : flags) s += (s.empty() ? "" : ",") + f.get<std::string>();
    return s.empty() ? "-" : s;
}

std::string hostport(const json& ip, const json& port) {
    return ip.is_null() ? "?" : ip.get<std::string>() + ":" + std::to_string(port.get<int>());
}

std::string secs(const json& s) { return std::to_string(static_cast<uint64_t>(s.get<double>())) + "s"; }

}  // namespace

std::string node_text(const json& d) {
    if (d.empty()) return "no nodes programmed\n";
    Rows rows{{"POD CIDR", "NODE IP", "FLAGS"}};
    for (const auto& e : d) rows.push_back({e["cidr"], e["node_ip"], joined(e["flags"])});
    return table(rows);
}

std::string service_text(const json& d) {
    Rows rows{{"FRONTEND", "FLAGS", "REV-NAT", "SLOT", "BACKEND", "ADDRESS"}};
    for (const auto& f : d["frontends"]) {
        std::string flags;
        for (const auto& fl : f["flags"]) {
            std::string s = fl;
            if (s == "affinity") s += "=" + f["affinity_timeout"].dump() + "s";
            flags += (flags.empty() ? "" : ",") + s;
        }
        // The frontend's columns on its first row only.
        std::vector<std::string> head{hostport(f["vip"], f["port"]) + "/" + f["proto"].get<std::string>(),
                                      flags.empty() ? "-" : flags, f["revnat_id"].dump()};
        if (f["backends"].empty()) rows.push_back({head[0], head[1], head[2], "-", "-", "(no backends)"});
        for (const auto& b : f["backends"]) {
            rows.push_back({head[0], head[1], head[2], b["slot"].dump(),
                            b["backend_id"].is_null() ? "missing" : b["backend_id"].dump(),
                            hostport(b["ip"], b["port"])});
            head = {"", "", ""};
        }
    }
    std::string out = d["frontends"].empty() ? "no services programmed\n" : table(rows);
    if (d["terminating"].empty()) return out;
    Rows term{{"BACKEND", "ADDRESS"}};
    for (const auto& b : d["terminating"])
        term.push_back({b["backend_id"].dump(), hostport(b["ip"], b["port"]) + "/" + b["proto"].get<std::string>()});
    return out + "\nbackends in no slot (terminating):\n" + table(term);
}

std::string ct_text(const json& d) {
    if (d.empty()) return "no tracked connections\n";
    Rows rows{{"DIR", "PROTO", "SOURCE", "DESTINATION", "NAT", "SNAT", "FLAGS", "BACKEND", "REV-NAT", "AGE", "IDLE",
               "PACKETS", "BYTES"}};
    for (const auto& e : d)
        rows.push_back({e["direction"], e["proto"], hostport(e["saddr"], e["sport"]), hostport(e["daddr"], e["dport"]),
                        hostport(e["nat"]["addr"], e["nat"]["port"]),
                        e["snat"].is_null() ? "-" : hostport(e["snat"]["addr"], e["snat"]["port"]), joined(e["flags"]),
                        e["backend_id"].dump(), e["revnat_id"].dump(), secs(e["age_s"]), secs(e["idle_s"]),
                        e["packets"].dump(), e["bytes"].dump()});
    return table(rows);
}

std::string nat_text(const json& d) {
    if (d.empty()) return "no masqueraded flows\n";
    Rows rows{{"DIR", "PROTO", "SOURCE", "DESTINATION", "NAT", "FLAGS", "AGE", "IDLE", "PACKETS", "BYTES"}};
    for (const auto& e : d) {
        std::string src = hostport(e["saddr"], e["sport"]), dst = hostport(e["daddr"], e["dport"]);
        std::string nat = hostport(e["nat"]["addr"], e["nat"]["port"]);
        if (!e["echo_id"].is_null()) {  // ICMP echo: the identifier, on the pod's side
            const std::string id = " id " + e["echo_id"].dump();
            const bool egress = e["direction"] == "egress";
            src = e["saddr"].get<std::string>() + (egress ? id : "");
            dst = e["daddr"].get<std::string>() + (egress ? "" : id);
            nat = e["nat"]["addr"].get<std::string>() + " id " + e["nat"]["port"].dump();
        }
        rows.push_back({e["direction"], e["proto"], src, dst, nat, joined(e["flags"]), secs(e["age_s"]),
                        secs(e["idle_s"]), e["packets"].dump(), e["bytes"].dump()});
    }
    return table(rows);
}

std::string dump_text(const json& d) {
    std::string out = d["name"].get<std::string>() + ": " + d["type"].get<std::string>() + ", key " +
                      d["key_size"].dump() + " bytes, value " + d["value_size"].dump() + " bytes, max entries " +
                      d["max_entries"].dump() + ", " + std::to_string(d["entries"].size()) + " entries\n";
    for (const auto& e : d["entries"]) {
        out += "\nkey:   " + e["key"].get<std::string>() + "\n";
        if (e.contains("value")) out += "value: " + e["value"].get<std::string>() + "\n";
        for (const auto& c : e.value("values", json::array()))
            out += "value (CPU " + c["cpu"].dump() + "): " + c["value"].get<std::string>() + "\n";
        if (e.contains("sum") && !e["sum"].is_null()) out += "sum:   " + e["sum"].get<std::string>() + "\n";
        if (e.contains("decoded"))
            out += "  " + e["decoded"]["key"].dump() + " => " + e["decoded"]["value"].dump() + "\n";
    }
    return out;
}

}  // namespace skiff::ctl
