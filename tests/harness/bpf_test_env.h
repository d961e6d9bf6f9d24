// Shared harness for the BPF program tests:
//  - a private network namespace for the whole test process (unshare), with
//    veth pairs whose ifindexes BPF_PROG_TEST_RUN accepts as skb->dev;
//  - a unique bpffs pin directory per test, removed again in TearDown;
//  - hand-built frames and Internet checksums (frames.h);
//  - a BPF_PROG_TEST_RUN wrapper and a readable view of skiff_metrics;
//  - raw access to pinned maps, endpoint/node entries;
//  - BpfProgramTest, the fixture all program tests build on: programs loaded
//    into a fresh pin dir, the common maps opened, all removed in TearDown.
#pragma once

#include <bpf/bpf.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "datapath/maps.h"
#include "datapath/objects.h"
#include "datapath/pins.h"
#include "common/ipv4.h"
#include "common/result.h"
#include "frames.h"
#include "net/netns.h"
#include "net/rtnetlink.h"

namespace skiff::bpftest {

// ---------------------------------------------------------------------------
// Private network namespace with test devices
// ---------------------------------------------------------------------------

struct TestLink {
    int ifindex = 0;
    MacAddr mac{};
};

// One veth pair: "host" is the host-side end (what from_pod is attached to
// and what endpoint entries carry), "pod" stands in for the pod's eth0.
struct TestVeth {
    TestLink host;
    TestLink pod;
};

struct TestNet {
    unsigned long root_ns_dev = 0, root_ns_ino = 0;  // the netns we left
    TestVeth src;                                    // the sending pod
    TestVeth dst;                                    // a local destination pod
    TestVeth other;                                  // a third pod (its IP is used for spoofing)
};

namespace detail {

inline Result<std::pair<unsigned long, unsigned long>> current_netns_id() {
    struct stat st {};
    if (::stat("/proc/thread-self/ns/net", &st) != 0) return Error::errno_("stat own netns");
    return std::make_pair(static_cast<unsigned long>(st.st_dev), static_cast<unsigned long>(st.st_ino));
}

// An error unless the calling thread has left net's root netns.
inline Status check_private_netns(const TestNet& net) {
    SKIFF_ASSIGN_OR_RETURN(auto now, current_netns_id());
    if (now.first == net.root_ns_dev && now.second == net.root_ns_ino) return Error::invalid("still in the root netns");
    return ok();
}

inline Result<TestVeth> make_veth(Netlink& nl, const std::string& host, const std::string& pod) {
    VethSpec spec;
    spec.host_name = host;
    spec.peer_name = pod;
    SKIFF_TRY(nl.create_veth(spec));
    SKIFF_ASSIGN_OR_RETURN(LinkInfo h, nl.link(host));
    SKIFF_ASSIGN_OR_RETURN(LinkInfo p, nl.link(pod));
    SKIFF_TRY(nl.set_up(h.ifindex));
    SKIFF_TRY(nl.set_up(p.ifindex));
    TestVeth v;
    v.host = {h.ifindex, h.mac};
    v.pod = {p.ifindex, p.mac};
    return v;
}

inline Result<TestNet> setup_test_net() {
    TestNet net;
    SKIFF_ASSIGN_OR_RETURN(auto root, current_netns_id());
    net.root_ns_dev = root.first;
    net.root_ns_ino = root.second;
    // Everything below happens in a namespace nobody else can see; it goes
    // away with the process. gtest runs tests on this (the main) thread.
    if (::unshare(CLONE_NEWNET) != 0) return Error::errno_("unshare(CLONE_NEWNET)");
    SKIFF_ASSIGN_OR_RETURN(auto now, current_netns_id());
    if (now == root) return Error::invalid("unshare(CLONE_NEWNET) did not change the netns");
    SKIFF_ASSIGN_OR_RETURN(Netlink nl, Netlink::open());
    SKIFF_ASSIGN_OR_RETURN(net.src, make_veth(nl, "skt-src-h", "skt-src-p"));
    SKIFF_ASSIGN_OR_RETURN(net.dst, make_veth(nl, "skt-dst-h", "skt-dst-p"));
    SKIFF_ASSIGN_OR_RETURN(net.other, make_veth(nl, "skt-oth-h", "skt-oth-p"));
    return net;
}

}  // namespace detail

// The process' private netns and its devices, set up on first use. Callers
// must check ok() before doing anything network related, so a failed
// unshare never lets a test touch the namespace the binary was started in.
inline const Result<TestNet>& test_net() {
    static const Result<TestNet> net = detail::setup_test_net();
    return net;
}

// ---------------------------------------------------------------------------
// Pin directories
// ---------------------------------------------------------------------------

inline std::string pin_dir_prefix() { return "/sys/fs/bpf/skiff-bpftest-" + std::to_string(::getpid()) + "-"; }

// Unlink every entry of a (flat) pin dir, then the dir. Missing is fine.
// Returns an empty string on success, else what went wrong.
inline std::string remove_pin_dir(const std::string& path) {
    std::string err;
    DIR* d = ::opendir(path.c_str());
    if (!d) {
        if (errno == ENOENT) return {};
        return "opendir " + path + ": " + std::strerror(errno);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : names) {
        std::string p = path + "/" + n;
        if (::unlink(p.c_str()) != 0 && errno != ENOENT) err += "unlink " + p + ": " + std::strerror(errno) + "; ";
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) err += "rmdir " + path + ": " + std::strerror(errno) + "; ";
    return err;
}

// Remove whatever pin dirs this process left behind, and those of test
// processes that died before their own cleanup ran (killed, crashed).
inline void sweep_pin_dirs() {
    const std::string prefix = pin_dir_prefix();
    const std::string base = "/sys/fs/bpf/";
    const std::string any = base + "skiff-bpftest-";
    DIR* d = ::opendir(base.c_str());
    if (!d) return;
    std::vector<std::string> mine;
    while (dirent* e = ::readdir(d)) {
        std::string p = base + e->d_name;
        if (p.rfind(prefix, 0) == 0) {
            mine.push_back(p);
        } else if (p.rfind(any, 0) == 0) {
            std::string pid = p.substr(any.size(), p.find('-', any.size()) - any.size());
            if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
                ::access(("/proc/" + pid).c_str(), F_OK) != 0)
                mine.push_back(p);
        }
    }
    ::closedir(d);
    for (const auto& p : mine) {
        std::string err = remove_pin_dir(p);
        if (!err.empty()) std::fprintf(stderr, "bpftest: cleanup: %s\n", err.c_str());
    }
}

// A unique pin dir: /sys/fs/bpf/skiff-bpftest-<pid>-<counter>.
class PinDir {
public:
    PinDir() {
        static std::atomic<unsigned> counter{0};
        path_ = pin_dir_prefix() + std::to_string(counter++);
    }
    PinDir(const PinDir&) = delete;
    PinDir& operator=(const PinDir&) = delete;
    ~PinDir() { (void)remove(); }

    const std::string& path() const { return path_; }

    Status create() {
        // A stale dir of an earlier process with the same pid: start clean.
        if (std::string err = remove_pin_dir(path_); !err.empty()) return Error{EIO, err};
        return datapath::ensure_pin_dir(path_);
    }

    // Remove the pinned objects and the dir; "" when all went fine.
    std::string remove() { return remove_pin_dir(path_); }

private:
    std::string path_;
};

// Unshares the netns up front and sweeps leftover pin dirs at the end.
class BpfTestEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        const auto& net = test_net();
        if (!net.ok()) std::fprintf(stderr, "bpftest: no private netns: %s\n", net.error().message.c_str());
        sweep_pin_dirs();
    }
    void TearDown() override { sweep_pin_dirs(); }
};

inline ::testing::Environment* const kBpfTestEnvironment = ::testing::AddGlobalTestEnvironment(new BpfTestEnvironment);

// ---------------------------------------------------------------------------
// Frames of the test devices (the frames themselves: frames.h)
// ---------------------------------------------------------------------------

// A frame as the pod behind v sends it: pod MAC -> its host veth's MAC.
inline Bytes eth_from_pod(const TestVeth& v, const Bytes& l3, uint16_t ethertype = kEthPIp) {
    return ethernet(v.host.mac, v.pod.mac, ethertype, l3);
}

// A frame as it arrives on an uplink from src_mac: src_mac -> the uplink's MAC.
inline Bytes eth_from_wire(const TestVeth& uplink, const MacAddr& src_mac, const Bytes& l3,
                           uint16_t ethertype = kEthPIp) {
    return ethernet(uplink.host.mac, src_mac, ethertype, l3);
}

// ---------------------------------------------------------------------------
// Running a program
// ---------------------------------------------------------------------------

constexpr uint32_t kRedirect = TC_ACT_REDIRECT;  // 7
constexpr uint32_t kOk = TC_ACT_OK;              // 0
constexpr uint32_t kShot = TC_ACT_SHOT;          // 2
static_assert(kRedirect == 7 && kOk == 0 && kShot == 2);

struct RunResult {
    int err = 0;          // 0, or the negative errno of BPF_PROG_TEST_RUN
    uint32_t retval = 0;  // the program's return value (TC action)
    Bytes data;           // the packet after the program
    __sk_buff ctx{};
};

// BPF_PROG_TEST_RUN of a SCHED_CLS program on frame with the given __sk_buff
// (ifindex, and e.g. GSO metadata, which test_run copies into skb_shinfo).
inline RunResult test_run(int prog_fd, const Bytes& frame, const __sk_buff& ctx_in) {
    RunResult r;
    r.data.assign(frame.size() + 256, 0);  // room if a program ever grows it
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = frame.empty() ? nullptr : frame.data();
    o.data_size_in = static_cast<uint32_t>(frame.size());
    o.data_out = r.data.data();
    o.data_size_out = static_cast<uint32_t>(r.data.size());
    o.ctx_in = &ctx_in;
    o.ctx_size_in = sizeof(ctx_in);
    o.ctx_out = &r.ctx;
    o.ctx_size_out = sizeof(r.ctx);
    o.repeat = 1;
    int ret = bpf_prog_test_run_opts(prog_fd, &o);
    if (ret != 0) {
        r.err = ret < 0 ? ret : -errno;
        r.data.clear();
        return r;
    }
    r.retval = o.retval;
    r.data.resize(o.data_size_out);
    return r;
}

// The same, as if received on ifindex (which must exist in this netns; 0/1
// mean loopback).
inline RunResult test_run(int prog_fd, const Bytes& frame, int ifindex) {
    __sk_buff ctx_in{};
    ctx_in.ifindex = static_cast<uint32_t>(ifindex);
    return test_run(prog_fd, frame, ctx_in);
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

struct Count {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    bool operator==(const Count&) const = default;
};

using Counters = std::map<std::pair<uint32_t, uint32_t>, Count>;  // {reason, dir} -> count

inline Result<Counters> read_counters(datapath::MetricsMap& m) {
    SKIFF_ASSIGN_OR_RETURN(auto rows, m.read());
    Counters c;
    for (const auto& r : rows) c[{r.reason, r.dir}] = Count{r.packets, r.bytes};
    return c;
}

inline std::string describe(const Counters& c) {
    if (c.empty()) return "(no counters)";
    std::string s;
    for (const auto& [k, v] : c) {
        if (!s.empty()) s += ", ";
        s += std::string(datapath::reason_name(k.first)) + "(" + std::to_string(k.first) + ")/" +
             std::string(datapath::dir_name(k.second)) + ": " + std::to_string(v.packets) + " pkts " +
             std::to_string(v.bytes) + " bytes";
    }
    return s;
}

// ---------------------------------------------------------------------------
// Raw map access (bpf_map_* on open_pinned_map() fds), what: error context
// ---------------------------------------------------------------------------

template <class K, class V>
Status map_put(int fd, const K& k, const V& v, const std::string& what) {
    if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) != 0) return Error::errno_(what);
    return {};
}

template <class K>
Status map_del(int fd, const K& k, const std::string& what) {
    if (bpf_map_delete_elem(fd, &k) != 0) return Error::errno_(what);
    return {};
}

template <class V, class K>
std::optional<V> map_get(int fd, const K& k) {
    V v{};
    if (bpf_map_lookup_elem(fd, &k, &v) != 0) return std::nullopt;
    return v;
}

// Every entry of a hash map, in iteration order.
template <class K, class V>
std::vector<std::pair<K, V>> map_entries(int fd) {
    std::vector<std::pair<K, V>> out;
    K cur{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        V v{};
        if (bpf_map_lookup_elem(fd, &next, &v) == 0) out.emplace_back(next, v);
        cur = next;
        prev = &cur;
    }
    return out;
}

template <class K>
size_t map_key_count(int fd) {
    size_t n = 0;
    K cur{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        ++n;
        cur = next;
        prev = &cur;
    }
    return n;
}

// ---------------------------------------------------------------------------
// Map entries
// ---------------------------------------------------------------------------

// The endpoint entry of the pod behind veth v.
inline skiff_endpoint_info endpoint(const TestVeth& v, uint32_t flags = SKIFF_EP_F_LOCAL) {
    skiff_endpoint_info e{};
    e.ifindex = static_cast<uint32_t>(v.host.ifindex);
    e.flags = flags;
    std::memcpy(e.pod_mac, v.pod.mac.data(), 6);
    std::memcpy(e.host_mac, v.host.mac.data(), 6);
    return e;
}

inline skiff_node_info node(Ipv4 node_ip, uint32_t flags = 0) {
    skiff_node_info n{};
    n.node_ip = node_ip.be();
    n.flags = flags;
    return n;
}

// ---------------------------------------------------------------------------
// The common fixture: programs loaded into a fresh pin dir per test, the
// maps opened, and all of it closed and removed again in TearDown
// ---------------------------------------------------------------------------

#define ASSERT_OK(expr)                                                    \
    do {                                                                   \
        auto ok_r_ = (expr);                                               \
        ASSERT_TRUE(ok_r_.ok()) << #expr << ": " << ok_r_.error().message; \
    } while (0)

class BpfProgramTest : public ::testing::Test {
protected:
    // Sets net_ to the private netns (test_net()).
    void enter_test_net() {
        const auto& net = test_net();
        ASSERT_TRUE(net.ok()) << net.error().message;
        net_ = &net.value();
    }

    void create_pins() { ASSERT_TRUE(pins_.create().ok()) << pins_.path(); }

    enum : unsigned { kWithUplink = 1, kWithNodes = 2 };

    // A fresh pin dir with from_pod (and from_uplink) loaded into it, the
    // endpoint, (node) and metrics maps opened.
    void load_pinned(unsigned with = 0) {
        ASSERT_NO_FATAL_FAILURE(create_pins());
        ASSERT_NO_FATAL_FAILURE(load(datapath::Program::FromPod, from_pod_));
        if (with & kWithUplink) {
            ASSERT_NO_FATAL_FAILURE(load(datapath::Program::FromUplink, from_uplink_));
        }
        ASSERT_NO_FATAL_FAILURE(open(endpoints_));
        if (with & kWithNodes) {
            ASSERT_NO_FATAL_FAILURE(open(nodes_));
        }
        ASSERT_NO_FATAL_FAILURE(open(metrics_));
    }

    void load(datapath::Program program, UniqueFd& fd) {
        auto prog = datapath::pinned_program(program, pins_.path());
        ASSERT_TRUE(prog.ok()) << prog.error().message;
        fd = std::move(prog).value();
    }

    template <class Map>
    void open(std::optional<Map>& map) {
        auto m = Map::open(pins_.path());
        ASSERT_TRUE(m.ok()) << m.error().message;
        map.emplace(std::move(m).value());
    }

    void TearDown() override {
        metrics_.reset();
        nodes_.reset();
        endpoints_.reset();
        from_pod_.reset();
        from_uplink_.reset();
        std::string err = pins_.remove();
        EXPECT_EQ(err, "") << "cleanup of " << pins_.path();
    }

    void upsert(Ipv4 ip, const skiff_endpoint_info& info) {
        auto s = endpoints_->upsert(ip, info);
        ASSERT_TRUE(s.ok()) << s.error().message;
    }

    void upsert_node(const Ipv4Prefix& cidr, const skiff_node_info& info) {
        auto s = nodes_->upsert(cidr, info);
        ASSERT_TRUE(s.ok()) << s.error().message;
    }

    // --- counters ---

    // Every counter, conntrack entry accounting included.
    Counters all_counters() {
        auto c = read_counters(*metrics_);
        EXPECT_TRUE(c.ok()) << c.error().message;
        return c.ok() ? c.value() : Counters{};
    }
    // Packet verdicts only (what expect_counters compares).
    Counters counters() {
        Counters c = all_counters();
        std::erase_if(c, [](const auto& kv) {
            return kv.first.first == SKIFF_CT_ENTRY_INSERTED || kv.first.first == SKIFF_CT_ENTRY_REMOVED;
        });
        return c;
    }
    void expect_counters(const Counters& want) { EXPECT_EQ(describe(counters()), describe(want)); }
    Count counter(uint32_t reason, uint32_t dir = SKIFF_DIR_EGRESS) {
        Counters c = all_counters();
        auto it = c.find({reason, dir});
        return it == c.end() ? Count{} : it->second;
    }
    // The only non-zero counter is {reason, dir} with these totals.
    void expect_only(uint32_t reason, uint32_t dir, uint64_t packets, uint64_t bytes) {
        expect_counters({{{reason, dir}, Count{packets, bytes}}});
    }

    PinDir pins_;
    const TestNet* net_ = nullptr;
    UniqueFd from_pod_, from_uplink_;
    std::optional<datapath::EndpointMap> endpoints_;
    std::optional<datapath::NodeMap> nodes_;
    std::optional<datapath::MetricsMap> metrics_;
};

}  // namespace skiff::bpftest
