// Shared helpers for the unit tests: temp dirs, a fake environment, fake
// Datapath / PodNetwork implementations and a throw-away network namespace
// (created in a user namespace, so no privileges are needed; tests that need
// it skip when the kernel does not allow unprivileged user namespaces).
#pragma once

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datapath/datapath.h"
#include "cni/plugin.h"
#include "cni/pod_network.h"
#include "cni/state.h"
#include "cni/version.h"
#include "ipam/allocator.h"

namespace skiff_test {

using nlohmann::json;
using skiff::Error;
using skiff::Ipv4;
using skiff::MacAddr;
using skiff::Result;
using skiff::Status;

inline Ipv4 ip(const char* s) { return *Ipv4::parse(s); }

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/skiff-unit-XXXXXX";
        char* p = ::mkdtemp(tmpl);
        if (!p) throw std::runtime_error("mkdtemp failed");
        path_ = p;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string sub(const std::string& rel) const { return path_ + "/" + rel; }

private:
    std::string path_;
};

// A CNI_* environment backed by a map (values stay valid while it lives).
struct FakeEnv {
    std::map<std::string, std::string> vars;
    skiff::cni::Getenv getenv() const {
        return [this](const char* k) -> const char* {
            auto it = vars.find(k);
            return it == vars.end() ? nullptr : it->second.c_str();
        };
    }
};

// ---- Datapath fake: state shared by every instance the factory makes ----

struct FakeDatapathState {
    std::map<Ipv4, skiff_endpoint_info> endpoints;
    std::set<int> attached;
    bool fail_load = false;
    bool fail_attach = false;
    bool fail_upsert = false;
    int load_calls = 0;
    std::vector<std::string> pin_paths;
};

class FakeDatapath final : public skiff::Datapath {
public:
    explicit FakeDatapath(FakeDatapathState& s) : s_(s) {}
    Status ensure_loaded() override {
        ++s_.load_calls;
        if (s_.fail_load) return Error{ENOENT, "fake: datapath not loaded"};
        return skiff::ok();
    }
    Status attach_pod(int ifindex) override {
        if (s_.fail_attach) return Error{EPERM, "fake: attach failed"};
        s_.attached.insert(ifindex);
        return skiff::ok();
    }
    Result<bool> pod_attached(int ifindex) override { return s_.attached.count(ifindex) > 0; }
    Status upsert_endpoint(Ipv4 a, const skiff_endpoint_info& info) override {
        if (s_.fail_upsert) return Error{ENOSPC, "fake: endpoint map full"};
        s_.endpoints[a] = info;
        return skiff::ok();
    }
    Status delete_endpoint(Ipv4 a) override {
        s_.endpoints.erase(a);
        return skiff::ok();
    }
    Result<std::optional<skiff_endpoint_info>> lookup_endpoint(Ipv4 a) override {
        auto it = s_.endpoints.find(a);
        if (it == s_.endpoints.end()) return std::optional<skiff_endpoint_info>{};
        return std::optional<skiff_endpoint_info>{it->second};
    }
    Result<std::vector<std::pair<Ipv4, skiff_endpoint_info>>> list_endpoints() override {
        return std::vector<std::pair<Ipv4, skiff_endpoint_info>>(s_.endpoints.begin(), s_.endpoints.end());
    }

private:
    FakeDatapathState& s_;
};

inline skiff_endpoint_info endpoint_info(int ifindex) {
    skiff_endpoint_info e{};
    e.ifindex = static_cast<uint32_t>(ifindex);
    e.flags = SKIFF_EP_F_LOCAL;
    for (int i = 0; i < 6; ++i) e.host_mac[i] = static_cast<uint8_t>(i == 5 ? ifindex : 0x02);
    return e;
}

// ---- PodNetwork fake ----

struct FakeLink {
    int ifindex = 0;
    std::string alias;
    std::string netns;   // pod side
    std::string ifname;  // pod side
    Ipv4 ip;
    unsigned mtu = 0;
    MacAddr host_mac{}, pod_mac{};
};

class FakePodNetwork final : public skiff::cni::PodNetwork {
public:
    std::map<std::string, FakeLink> links;                      // by host veth name
    std::set<std::pair<std::string, std::string>> pod_ifnames;  // (netns path, ifname)
    std::vector<std::string> torn_down;
    std::set<int> down;  // set_down() ifindexes
    bool fail_setup = false;
    bool fail_set_down = false;
    int next_ifindex = 100;

    // A host veth as a previous ADD would have left it.
    FakeLink& add_link(const std::string& name, const std::string& alias, int ifindex) {
        FakeLink l;
        l.ifindex = ifindex;
        l.alias = alias;
        l.host_mac = {0x02, 0, 0, 0, 0, static_cast<uint8_t>(ifindex)};
        l.pod_mac = {0x0a, 0, 0, 0, 0, static_cast<uint8_t>(ifindex)};
        return links[name] = l;
    }

    Result<bool> ifname_exists(const skiff::NetNs& ns, const std::string& ifname) override {
        return pod_ifnames.count({ns.path(), ifname}) > 0;
    }
    Result<skiff::cni::PodLinks> setup(const skiff::NetNs& ns, const skiff::cni::PodSpec& spec) override {
        if (fail_setup) return Error{EEXIST, "fake: veth setup failed"};
        FakeLink& l = add_link(spec.host_veth, spec.host_alias, next_ifindex++);
        l.netns = ns.path();
        l.ifname = spec.ifname;
        l.ip = spec.ip;
        l.mtu = spec.mtu;
        pod_ifnames.insert({ns.path(), spec.ifname});
        return skiff::cni::PodLinks{l.ifindex, l.host_mac, l.pod_mac};
    }
    Status teardown(const std::string& host_veth) override {
        torn_down.push_back(host_veth);
        auto it = links.find(host_veth);
        if (it != links.end()) {
            pod_ifnames.erase({it->second.netns, it->second.ifname});
            links.erase(it);
        }
        return skiff::ok();
    }
    Status set_down(int ifindex) override {
        if (fail_set_down) return Error{EPERM, "fake: cannot set link down"};
        for (const auto& [n, l] : links)
            if (l.ifindex == ifindex) {
                down.insert(ifindex);
                return skiff::ok();
            }
        return Error{ENODEV, "fake: no link #" + std::to_string(ifindex)};
    }
    Status teardown(int ifindex) override {
        for (const auto& [n, l] : links)
            if (l.ifindex == ifindex) return teardown(std::string(n));
        return skiff::ok();
    }
    Result<bool> link_exists(int ifindex) override {
        for (const auto& [n, l] : links)
            if (l.ifindex == ifindex) return true;
        return false;
    }
    Result<skiff::cni::PodLinks> host_side(const std::string& host_veth) override {
        auto it = links.find(host_veth);
        if (it == links.end()) return Error{ENODEV, "fake: no link " + host_veth};
        return skiff::cni::PodLinks{it->second.ifindex, it->second.host_mac, it->second.pod_mac,
                                    down.count(it->second.ifindex) == 0};
    }
    Status verify(const skiff::NetNs& ns, const skiff::cni::PodSpec& spec) override {
        auto it = links.find(spec.host_veth);
        if (it == links.end()) return Error{ENODEV, "fake: host veth missing"};
        if (!pod_ifnames.count({ns.path(), spec.ifname})) return Error{ENODEV, "fake: pod interface missing"};
        if (it->second.ip != spec.ip) return Error::invalid("fake: pod address differs");
        return skiff::ok();
    }
    Result<std::vector<std::pair<std::string, std::string>>> host_veths(const std::string& prefix) override {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& [n, l] : links)
            if (l.alias.rfind(prefix, 0) == 0) out.emplace_back(n, l.alias);
        return out;
    }
};

// ---- A network namespace other than ours, held by a child process ----

class ScopedNetns {
public:
    ScopedNetns() {
        int p[2];
        if (::pipe(p) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::close(p[0]);
            char ok = ::unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 ? 'y' : 'n';
            (void)!::write(p[1], &ok, 1);
            ::close(p[1]);
            for (;;) ::pause();
        }
        ::close(p[1]);
        char ok = 'n';
        if (pid_ > 0 && ::read(p[0], &ok, 1) == 1 && ok == 'y') path_ = "/proc/" + std::to_string(pid_) + "/ns/net";
        ::close(p[0]);
    }
    ~ScopedNetns() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    ScopedNetns(const ScopedNetns&) = delete;
    ScopedNetns& operator=(const ScopedNetns&) = delete;
    bool available() const { return !path_.empty(); }
    const std::string& path() const { return path_; }

private:
    pid_t pid_ = -1;
    std::string path_;
};

// Checks the shape every error output must have and returns the decoded JSON.
inline json expect_cni_error(const skiff::cni::PluginOutput& out, int code) {
    EXPECT_NE(out.exit_code, 0) << out.stdout_text;
    json j = json::parse(out.stdout_text, nullptr, false);
    EXPECT_TRUE(j.is_object()) << "error output is not a JSON object: " << out.stdout_text;
    if (!j.is_object()) return j;
    EXPECT_TRUE(j.contains("code") && j["code"].is_number_integer()) << out.stdout_text;
    EXPECT_EQ(j.value("code", -1), code) << out.stdout_text;
    EXPECT_TRUE(j.contains("msg") && j["msg"].is_string() && !j["msg"].get<std::string>().empty()) << out.stdout_text;
    EXPECT_TRUE(j.contains("cniVersion") && j["cniVersion"].is_string() &&
                skiff::cni::version_supported(j["cniVersion"].get<std::string>()))
        << out.stdout_text;
    return j;
}

// run_plugin() with fakes, state in a temp dir.
class PluginFixture : public ::testing::Test {
protected:
    TempDir tmp;
    FakeDatapathState dp;
    FakePodNetwork pn;
    skiff::cni::Deps deps;
    std::vector<std::string> delegate_calls;
    bool delegate_fails = false;
    json delegate_add_result;  // what the fake IPAM plugin prints for ADD
    std::map<std::string, std::string> extra_env;

    void SetUp() override {
        deps.datapath = [this](const std::string& pin) -> std::unique_ptr<skiff::Datapath> {
            dp.pin_paths.push_back(pin);
            return std::make_unique<FakeDatapath>(dp);
        };
        deps.pod_network = &pn;
        deps.delegate = [this](const std::string& type, const std::string& cmd, const skiff::cni::Env&,
                               const std::string&) -> skiff::cni::CniResult<json> {
            delegate_calls.push_back(type + " " + cmd);
            if (delegate_fails) return skiff::cni::CniError{skiff::cni::kInternal, "fake ipam plugin failed", ""};
            return cmd == "ADD" ? delegate_add_result : json();
        };
    }

    std::string state_dir() const { return tmp.sub("state"); }

    json conf(const std::string& version = "1.1.0", const char* pod_cidr = "10.244.1.0/24") const {
        return {{"cniVersion", version}, {"name", "skiffnet"},      {"type", "skiff"},
                {"podCIDR", pod_cidr},   {"stateDir", state_dir()}, {"pinPath", "/sys/fs/bpf/skiff-unit"}};
    }

    // Runs one command; CNI_CONTAINERID/CNI_IFNAME/CNI_NETNS only for ADD, DEL and CHECK.
    skiff::cni::PluginOutput run(const std::string& cmd, const std::string& stdin_text, const std::string& cid = "ctr1",
                                 const std::string& ifname = "eth0", const std::string& netns = "") {
        FakeEnv e;
        e.vars["CNI_COMMAND"] = cmd;
        e.vars["CNI_PATH"] = tmp.sub("no-plugins");
        if (cmd == "ADD" || cmd == "DEL" || cmd == "CHECK") {
            e.vars["CNI_CONTAINERID"] = cid;
            e.vars["CNI_IFNAME"] = ifname;
            if (!netns.empty()) e.vars["CNI_NETNS"] = netns;
        }
        for (const auto& [k, v] : extra_env) e.vars[k] = v;
        return skiff::cni::run_plugin(e.getenv(), stdin_text, deps);
    }
    skiff::cni::PluginOutput run(const std::string& cmd, const json& c, const std::string& cid = "ctr1",
                                 const std::string& ifname = "eth0", const std::string& netns = "") {
        return run(cmd, c.dump(), cid, ifname, netns);
    }

    skiff::ipam::Allocator alloc(const char* range = "10.244.1.0/24") {
        auto a =
            skiff::ipam::Allocator::open(state_dir() + "/networks/skiffnet/ipam", *skiff::Ipv4Prefix::parse(range));
        if (!a) throw std::runtime_error(a.error().message);
        return std::move(*a);
    }
    skiff::cni::StateStore store() { return skiff::cni::StateStore(state_dir(), "skiffnet"); }
    static void expect_success(const skiff::cni::PluginOutput& out) {
        EXPECT_EQ(out.exit_code, 0) << out.stdout_text;
        EXPECT_EQ(out.stdout_text, "");
    }
};

}  // namespace skiff_test
