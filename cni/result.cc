#include "result.h"

#include <limits>

#include "version.h"

namespace skiff::cni {

using nlohmann::json;

namespace {

CniError bad(const std::string& what) { return CniError{kDecodeFailure, "cannot decode result: " + what, ""}; }

// An integer field that fits an int; anything else is absent, as a field of
// another type is, never a wrapped value.
std::optional<int> opt_int(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    if (it->is_number_unsigned()) {
        auto v = it->get<uint64_t>();
        if (v > static_cast<uint64_t>(std::numeric_limits<int>::max())) return std::nullopt;
        return static_cast<int>(v);
    }
    auto v = it->get<int64_t>();
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) return std::nullopt;
    return static_cast<int>(v);
}

std::string opt_str(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return "";
    return it->get<std::string>();
}

}  // namespace

CniResult<CniResultModel> parse_result(const json& j) {
    if (!j.is_object()) return bad("not an object");
    CniResultModel r;
    if (auto it = j.find("interfaces"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return bad("'interfaces' is not an array");
        for (const auto& i : *it) {
            if (!i.is_object()) return bad("interface is not an object");
            r.interfaces.push_back({opt_str(i, "name"), opt_str(i, "mac"), opt_int(i, "mtu"), opt_str(i, "sandbox")});
        }
    }
    if (auto it = j.find("ips"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return bad("'ips' is not an array");
        for (const auto& i : *it) {
            if (!i.is_object() || !i.contains("address") || !i["address"].is_string())
                return bad("ip entry without a string 'address'");
            r.ips.push_back({opt_str(i, "address"), opt_str(i, "gateway"), opt_int(i, "interface")});
        }
    }
    if (auto it = j.find("routes"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return bad("'routes' is not an array");
        for (const auto& i : *it) {
            if (!i.is_object() || !i.contains("dst") || !i["dst"].is_string())
                return bad("route without a string 'dst'");
            r.routes.push_back({opt_str(i, "dst"), opt_str(i, "gw"), opt_int(i, "mtu"), opt_int(i, "advmss"),
                                opt_int(i, "priority"), opt_int(i, "table"), opt_int(i, "scope")});
        }
    }
    if (auto it = j.find("dns"); it != j.end() && it->is_object()) r.dns = *it;
    return r;
}

json result_to_json(const CniResultModel& r, const std::string& version) {
    const bool v1 = version_at_least(version, "1.0.0");
    const bool v11 = version_at_least(version, "1.1.0");
    json out = json::object();
    out["cniVersion"] = version;
    json ifs = json::array();
    for (const auto& i : r.interfaces) {
        json o = {{"name", i.name}};
        if (!i.mac.empty()) o["mac"] = i.mac;
        if (i.mtu && v1) o["mtu"] = *i.mtu;
        if (!i.sandbox.empty()) o["sandbox"] = i.sandbox;
        ifs.push_back(std::move(o));
    }
    out["interfaces"] = std::move(ifs);
    json ips = json::array();
    for (const auto& i : r.ips) {
        json o = json::object();
        if (!v1) o["version"] = i.address.find(':') == std::string::npos ? "4" : "6";
        o["address"] = i.address;
        if (!i.gateway.empty()) o["gateway"] = i.gateway;
        if (i.interface) o["interface"] = *i.interface;
        ips.push_back(std::move(o));
    }
    out["ips"] = std::move(ips);
    json routes = json::array();
    for (const auto& rt : r.routes) {
        json o = {{"dst", rt.dst}};
        if (!rt.gw.empty()) o["gw"] = rt.gw;
        if (v11) {
            if (rt.mtu) o["mtu"] = *rt.mtu;
            if (rt.advmss) o["advmss"] = *rt.advmss;
            if (rt.priority) o["priority"] = *rt.priority;
            if (rt.table) o["table"] = *rt.table;
            if (rt.scope) o["scope"] = *rt.scope;
        }
        routes.push_back(std::move(o));
    }
    out["routes"] = std::move(routes);
    out["dns"] = r.dns.is_object() ? r.dns : json::object();
    return out;
}

CniResultModel merge_results(CniResultModel prev, const CniResultModel& ours) {
    const int shift = static_cast<int>(prev.interfaces.size());
    for (const auto& i : ours.interfaces) prev.interfaces.push_back(i);
    for (auto ip : ours.ips) {
        if (ip.interface) *ip.interface += shift;
        prev.ips.push_back(std::move(ip));
    }
    for (const auto& rt : ours.routes) prev.routes.push_back(rt);
    if (prev.dns.empty() && ours.dns.is_object()) prev.dns = ours.dns;
    return prev;
}

json error_to_json(const CniError& e, const std::string& version) {
    json o = {
        {"cniVersion", version.empty() ? std::string(kLatestVersion) : version}, {"code", e.code}, {"msg", e.msg}};
    if (!e.details.empty()) o["details"] = e.details;
    return o;
}

std::string wire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace skiff::cni
