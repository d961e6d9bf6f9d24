// skiffctl net show: where programs are attached in the current network
// namespace (skiff's tc filter on each device's clsact hooks, and any tcx
// programs), and the cgroup socket-LB links pinned in the pin dir.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "datapath/tc.h"
#include "commands.h"
#include "common/fd.h"
#include "common/files.h"
#include "net/rtnetlink.h"

namespace skiff::ctl {
namespace {

using nlohmann::json;

// tcx attach types (Linux 6.6); the installed UAPI headers may predate them.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;
constexpr std::string_view kLinkPrefix = "link_sock_";  // see bpf/socklb.h

bool denied(int err) { return err == EPERM || err == EACCES; }

// Privilege failures get explain()'s message; anything else is reported as is.
Error priv(const Error& e, const Options& o) { return denied(e.code) ? explain(e, o) : e; }

struct ProgInfo {
    std::string name, tag;
};

Result<ProgInfo> prog_info(uint32_t id) {
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    if (!fd.valid()) {
        if (errno == ENOENT) return ProgInfo{};  // detached meanwhile
        return Error::errno_("open program " + std::to_string(id));
    }
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(fd.get(), &info, &len); err)
        return Error::os(-err, "read info of program " + std::to_string(id));
    std::string tag;
    char buf[3];
    for (uint8_t b : info.tag) {
        std::snprintf(buf, sizeof(buf), "%02x", b);
        tag += buf;
    }
    return ProgInfo{std::string(info.name, strnlen(info.name, sizeof(info.name))), tag};
}

// Programs on a device's tcx hook; none when the kernel has no tcx (EINVAL).
Result<std::vector<uint32_t>> tcx_ids(int ifindex, int type) {
    std::vector<uint32_t> ids(64);
    uint32_t count = static_cast<uint32_t>(ids.size()), flags = 0;
    // For tcx, the query's target is the ifindex (target_ifindex shares target_fd's slot).
    if (bpf_prog_query(ifindex, static_cast<bpf_attach_type>(type), 0, &flags, ids.data(), &count) != 0) {
        if (denied(errno)) return Error::errno_("query tcx programs of ifindex " + std::to_string(ifindex));
        return std::vector<uint32_t>{};
    }
    ids.resize(std::min<size_t>(count, ids.size()));
    return ids;
}

// Queries of hooks without clsact or filters fail as expected; libbpf would
// print the kernel's complaint about each.
struct QuietLibbpf {
    libbpf_print_fn_t old = libbpf_set_print(nullptr);
    ~QuietLibbpf() { libbpf_set_print(old); }
};

Result<json> devices(const Options& o) {
    QuietLibbpf quiet;
    auto nl = Netlink::open();
    if (!nl) return nl.error();
    auto links = nl->links();
    if (!links) return links.error();
    std::sort(links->begin(), links->end(), [](const auto& a, const auto& b) { return a.ifindex < b.ifindex; });
    json out = json::array();
    for (const auto& l : *links) {
        for (auto [hook, tc, tcx] : {std::tuple{"ingress", datapath::TcHook::Ingress, kTcxIngress},
                                     std::tuple{"egress", datapath::TcHook::Egress, kTcxEgress}}) {
            std::vector<std::pair<const char*, uint32_t>> found;  // mode, program id
            auto id = datapath::tc_attached_id(l.ifindex, tc);
            if (!id) return priv(id.error(), o);
            if (*id) found.emplace_back("tc", *id);
            auto ids = tcx_ids(l.ifindex, tcx);
            if (!ids) return priv(ids.error(), o);
            for (uint32_t t : *ids) found.emplace_back("tcx", t);
            for (const auto& [mode, prog] : found) {
                auto p = prog_info(prog);
                if (!p) return priv(p.error(), o);
                out.push_back({{"ifindex", l.ifindex},
                               {"name", l.name},
                               {"hook", hook},
                               {"mode", mode},
                               {"prog_id", prog},
                               {"prog_name", p->name},
                               {"prog_tag", p->tag}});
            }
        }
    }
    return out;
}

Result<json> cgroup_links(const Options& o) {
    auto files = list_dir(o.pin_path);
    if (!files) return priv(files.error(), o);
    std::sort(files->begin(), files->end());
    json out = json::array();
    for (const auto& f : *files) {
        if (f.rfind(kLinkPrefix, 0) != 0) continue;
        const std::string path = o.pin_path + "/" + f;
        UniqueFd fd(bpf_obj_get(path.c_str()));
        if (!fd.valid()) {
            if (errno == ENOENT) continue;  // unpinned meanwhile
            return priv(Error::errno_("open pinned link " + path), o);
        }
        bpf_link_info info{};
        uint32_t len = sizeof(info);
        if (int err = bpf_obj_get_info_by_fd(fd.get(), &info, &len); err)
            return priv(Error::os(-err, "read info of link " + path), o);
        const bool cg = info.type == BPF_LINK_TYPE_CGROUP;
        const auto attach = static_cast<bpf_attach_type>(info.cgroup.attach_type);
        const char* type = cg ? libbpf_bpf_attach_type_str(attach) : nullptr;
        auto p = prog_info(info.prog_id);
        if (!p) return priv(p.error(), o);
        out.push_back({{"hook", f.substr(kLinkPrefix.size())},
                       {"attach_type", type ? type : ""},
                       {"link_id", info.id},
                       {"prog_id", info.prog_id},
                       {"prog_name", p->name},
                       {"cgroup_id", cg ? info.cgroup.cgroup_id : 0}});
    }
    return out;
}

std::string net_text(const json& d, const std::string& pin) {
    using Rows = std::vector<std::vector<std::string>>;
    std::string out = "no programs attached to devices in this network namespace\n";
    if (!d["devices"].empty()) {
        Rows rows{{"DEVICE", "IFINDEX", "HOOK", "MODE", "PROG ID", "PROGRAM", "TAG"}};
        for (const auto& e : d["devices"])
            rows.push_back({e["name"], e["ifindex"].dump(), e["hook"], e["mode"], e["prog_id"].dump(), e["prog_name"],
                            e["prog_tag"]});
        out = table(rows);
    }
    if (d["cgroup"].empty()) return out + "\nno cgroup socket-LB links pinned in " + pin + "\n";
    Rows rows{{"CGROUP HOOK", "ATTACH TYPE", "LINK ID", "PROG ID", "PROGRAM", "CGROUP ID"}};
    for (const auto& e : d["cgroup"])
        rows.push_back({e["hook"], e["attach_type"], e["link_id"].dump(), e["prog_id"].dump(), e["prog_name"],
                        e["cgroup_id"].dump()});
    return out + "\n" + table(rows);
}

Result<Output> net_show(const Options& o, const std::vector<std::string>&) {
    SKIFF_ASSIGN_OR_RETURN(json devs, devices(o));
    SKIFF_ASSIGN_OR_RETURN(json cgs, cgroup_links(o));
    return Output{{{"devices", devs}, {"cgroup", cgs}}, [pin = o.pin_path](const json& d) { return net_text(d, pin); }};
}

}  // namespace

std::vector<Noun> net_nouns() { return {{"net", {{"show", "", net_show}}, "show"}}; }

}  // namespace skiff::ctl
