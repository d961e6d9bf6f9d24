// The Kubernetes API source (userspace/agent/k8s_source.cc) against a fake
// API server on 127.0.0.1 (k8s_fake_api.h): paged lists, watch events,
// bookmarks, 410s and relists, v1beta1 slices, skipped labels, token
// rotation, the node status patch, a server down at start.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/k8s_source.h"
#include "k8s_fake_api.h"

namespace skiff::agent {
namespace {

using namespace k8s_test;

json node(const std::string& name, const std::string& ip, const std::string& cidr, bool plural = true) {
    json n = {{"kind", "Node"},
              {"apiVersion", "v1"},
              {"metadata",
               {{"name", name},
                {"creationTimestamp", "2024-05-01T10:00:00Z"},
                {"managedFields", json::array({{{"manager", "kubelet"}}})}}},
              {"spec", {{"podCIDR", cidr}}},
              {"status",
               {{"addresses", {{{"type", "Hostname"}, {"address", name}}, {{"type", "InternalIP"}, {"address", ip}}}},
                {"conditions", json::array()}}}};
    if (plural) n["spec"]["podCIDRs"] = {cidr};
    return n;
}

json service(const std::string& ns, const std::string& name, const std::string& ip, json labels = json::object()) {
    return {{"kind", "Service"},
            {"apiVersion", "v1"},
            {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
            {"spec",
             {{"type", "ClusterIP"},
              {"clusterIP", ip},
              {"clusterIPs", {ip}},
              {"ports", {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", 8080}}}}}}};
}

// As `kubectl get endpointslice -o json` shows one.
json slice(const std::string& ns, const std::string& name, const std::string& svc, json labels = json::object()) {
    labels["kubernetes.io/service-name"] = svc;
    labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io";
    return json::parse(R"({"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
      "metadata": {"name": ")" +
                       name + R"(", "namespace": ")" + ns + R"(", "generateName": ")" + svc + R"(-",
        "labels": )" + labels.dump() +
                       R"(, "creationTimestamp": "2024-05-01T10:00:05Z",
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": ")" +
                       svc + R"(", "uid": "0b1c", "controller": true, "blockOwnerDeletion": true}],
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]},
      "endpoints": [
        {"addresses": ["10.244.1.7"], "conditions": {"ready": true, "serving": true, "terminating": false},
         "nodeName": "node-b", "zone": "z1", "targetRef": {"kind": "Pod", "namespace": ")" +
                       ns + R"(", "name": "web-1", "uid": "aa"}},
        {"addresses": ["10.244.2.9"], "conditions": {"ready": false, "serving": true, "terminating": true},
         "nodeName": "node-c", "targetRef": {"kind": "Pod", "namespace": ")" +
                       ns + R"(", "name": "web-2", "uid": "bb"}}],
      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})");
}

class KubeSourceTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_TRUE(api.up()); }

    KubeSourceOptions options() {
        KubeSourceOptions o;
        o.kube.server = api.url();
        o.watch_timeout_min = o.watch_timeout_max = 60s;  // the fake server ends streams when told
        o.watch_slack = 5s;
        o.backoff_initial = 10ms;
        o.backoff_max = 100ms;
        return o;
    }
    std::unique_ptr<KubeSource> start(KubeSourceOptions o) {
        auto s = make_kubernetes_source(std::move(o));
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        return s.ok() ? std::move(*s) : nullptr;
    }
    std::unique_ptr<KubeSource> start() { return start(options()); }

    // Polls until a snapshot satisfies pred; the last snapshot seen is kept.
    bool wait_spec(KubeSource& src, const std::function<bool(const ClusterSpec&)>& pred) {
        return eventually([&] {
            auto r = src.poll();
            if (r.ok() && *r) last = std::move(**r);
            return last && pred(*last);
        });
    }
    std::vector<std::string> requests() {
        std::lock_guard lk(api.mu);
        return api.requests;
    }
    size_t count_requests(const std::string& prefix) {
        size_t n = 0;
        for (const auto& r : requests()) n += r.rfind(prefix, 0) == 0;
        return n;
    }

    FakeApi api;
    std::optional<ClusterSpec> last;
};

bool has(const ObjectSet& s, const std::string& key) { return s.find(key) != nullptr; }

TEST_F(KubeSourceTest, PagedListBuildsTheSnapshot) {
    for (int i = 0; i < 7; ++i)
        api.put(kNodes, node("node-" + std::to_string(i), "192.168.1." + std::to_string(10 + i),
                             "10.244." + std::to_string(i) + ".0/24", i % 2 == 0));
    api.put(kSvcs, service("default", "web", "10.96.0.10"));
    api.put(kSlices, slice("default", "web-abc12", "web"));
    auto o = options();
    o.page_limit = 3;
    auto src = start(o);
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.nodes.size() == 7; }));
    const ClusterSpec& s = *last;
    EXPECT_EQ(s.nodes[3].name, "node-3");
    EXPECT_EQ(s.nodes[3].ip->str(), "192.168.1.13");
    EXPECT_EQ(s.nodes[3].pod_cidrs, std::vector<std::string>{"10.244.3.0/24"});  // from spec.podCIDR
    EXPECT_EQ(s.nodes[4].pod_cidrs, std::vector<std::string>{"10.244.4.0/24"});  // from spec.podCIDRs
    EXPECT_TRUE(s.nodes[0].created.has_value());
    ASSERT_TRUE(has(s.services, "default/web"));
    EXPECT_EQ((**s.services.find("default/web"))["kind"], "Service");  // restored on list items
    ASSERT_TRUE(has(s.endpoint_slices, "default/web-abc12"));
    const json& sl = **s.endpoint_slices.find("default/web-abc12");
    EXPECT_EQ(sl["apiVersion"], "discovery.k8s.io/v1");
    EXPECT_EQ(sl["endpoints"][1]["conditions"]["terminating"], true);
    EXPECT_EQ(sl["endpoints"][0]["nodeName"], "node-b");
    EXPECT_FALSE(sl["metadata"].contains("managedFields"));
    EXPECT_EQ(count_requests("LIST /api/v1/nodes"), 3u);  // 3 + 3 + 1
    EXPECT_EQ(count_requests("LIST /api/v1/nodes rv= continue= "), 1u);
    // Nothing changed: nothing new.
    auto again = src->poll();
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->has_value());
}

TEST_F(KubeSourceTest, WatchEventsReachPoll) {
    api.put(kNodes, node("node-a", "192.168.1.1", "10.244.0.0/24"));
    api.put(kSvcs, service("default", "web", "10.96.0.10"));
    auto src = start();
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return has(s.services, "default/web"); }));
    ObjectRef web = *last->services.find("default/web");
    uint64_t gen = last->generation;

    api.put(kSvcs, service("shop", "cart", "10.96.0.20"));  // ADDED
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return has(s.services, "shop/cart"); }));
    EXPECT_EQ(*last->services.find("default/web"), web);  // unchanged: same pointer
    ASSERT_TRUE(last->changes.has_value());
    EXPECT_EQ(last->changes->since, gen);
    EXPECT_EQ(last->changes->services, std::set<std::string>{"shop/cart"});

    api.put(kSvcs, service("default", "web", "10.96.0.11"));  // MODIFIED
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) {
        return (**s.services.find("default/web"))["spec"]["clusterIP"] == "10.96.0.11";
    }));
    api.del(kSvcs, "shop/cart");  // DELETED
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return !has(s.services, "shop/cart"); }));

    api.put(kNodes, node("node-b", "192.168.1.2", "10.244.1.0/24"));
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.nodes.size() == 2; }));
    // A node status heartbeat changes nothing the agent keeps: no snapshot.
    json hb = node("node-b", "192.168.1.2", "10.244.1.0/24");
    hb["status"]["conditions"] = {{{"type", "Ready"}, {"status", "True"}}};
    int64_t before = api.rv();
    api.put(kNodes, hb);
    ASSERT_TRUE(eventually([&] {
        for (const auto& st : src->status())
            if (st.resource == "nodes") return st.resource_version == std::to_string(before + 1);
        return false;
    }));
    auto r = src->poll();
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(count_requests("LIST /api/v1/services"), 1u);
}

std::string rv_of(KubeSource& src, const std::string& res) {
    for (const auto& st : src.status())
        if (st.resource == res) return st.resource_version;
    return "";
}

TEST_F(KubeSourceTest, BookmarkMovesTheVersionOnly) {
    api.put(kSvcs, service("default", "web", "10.96.0.10"));
    auto src = start();
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.services.size() == 1; }));
    api.bookmark(kSvcs);
    std::string want = std::to_string(api.rv());
    ASSERT_TRUE(eventually([&] { return rv_of(*src, "services") == want; }));
    auto r = src->poll();
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
    api.kick();  // the next watch starts from the bookmark
    ASSERT_TRUE(eventually([&] { return count_requests("WATCH /api/v1/services rv=" + want) == 1; }));
    EXPECT_EQ(count_requests("LIST /api/v1/services"), 1u);
}

TEST_F(KubeSourceTest, ExpiredWatchRelistsAndSeesMissedDeletion) {
    api.put(kSvcs, service("default", "web", "10.96.0.10"));
    api.put(kSvcs, service("default", "gone", "10.96.0.11"));
    auto src = start();
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.services.size() == 2; }));
    ObjectRef web = *last->services.find("default/web");
    api.del(kSvcs, "default/gone", /*tell_watchers=*/false);  // while "disconnected"
    api.compact_and_kick();                                   // the re-watch gets ERROR 410
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return !has(s.services, "default/gone"); }));
    EXPECT_EQ(*last->services.find("default/web"), web);  // relisted unchanged: same pointer
    EXPECT_EQ(count_requests("LIST /api/v1/services"), 2u);
    api.put(kSvcs, service("default", "new", "10.96.0.12"));  // and watching again
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return has(s.services, "default/new"); }));
}

TEST_F(KubeSourceTest, Http410OnWatchRelists) {
    {
        std::lock_guard lk(api.mu);
        api.watch_http_410 = true;
    }
    api.put(kNodes, node("node-a", "192.168.1.1", "10.244.0.0/24"));
    api.put(kNodes, node("node-b", "192.168.1.2", "10.244.1.0/24"));
    auto src = start();
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.nodes.size() == 2; }));
    api.del(kNodes, "default/node-b", false);
    api.compact_and_kick();
    ASSERT_TRUE(
        wait_spec(*src, [](const ClusterSpec& s) { return s.nodes.size() == 1 && s.nodes[0].name == "node-a"; }));
    EXPECT_GE(count_requests("LIST /api/v1/nodes"), 2u);
}

TEST_F(KubeSourceTest, OtherWatchErrorsRewatchWithoutRelisting) {
    api.put(kSvcs, service("default", "web", "10.96.0.10"));
    auto src = start();
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.services.size() == 1; }));
    api.send_error(kSvcs, 500);
    ASSERT_TRUE(eventually([&] {
        for (const auto& st : src->status())
            if (st.resource == "services") return st.last_error.find("scripted error") != std::string::npos;
        return false;
    }));
    api.put(kSvcs, service("default", "two", "10.96.0.12"));
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.services.size() == 2; }));
    EXPECT_EQ(count_requests("LIST /api/v1/services"), 1u);
    EXPECT_NE(src->describe().find("services"), std::string::npos);
}

TEST_F(KubeSourceTest, ExpiredContinueRestartsTheList) {
    for (int i = 0; i < 5; ++i)
        api.put(kSvcs, service("default", "s" + std::to_string(i), "10.96.0." + std::to_string(i + 1)));
    {
        std::lock_guard lk(api.mu);
        api.expire_continue = 1;
    }
    auto o = options();
    o.page_limit = 2;
    auto src = start(o);
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.services.size() == 5; }));
    EXPECT_EQ(count_requests("LIST /api/v1/services rv= continue= "), 2u);  // the first page twice
}

TEST_F(KubeSourceTest, EndpointSlicesFallBackToV1beta1) {
    {
        std::lock_guard lk(api.mu);
        api.not_found.insert(kSlices);
    }
    json s = slice("default", "web-x1", "web");
    s["apiVersion"] = "discovery.k8s.io/v1beta1";
    for (auto& e : s["endpoints"]) {
        e["topology"] = {
            {"kubernetes.io/hostname", e["nodeName"]}, {"topology.kubernetes.io/zone", "z9"}, {"rack", "r1"}};
        e.erase("nodeName");
        e.erase("zone");
    }
    api.put(kBetaSlices, s);
    auto src = start();
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return has(s.endpoint_slices, "default/web-x1"); }));
    const json& got = **last->endpoint_slices.find("default/web-x1");
    EXPECT_EQ(got["apiVersion"], "discovery.k8s.io/v1");
    EXPECT_EQ(got["endpoints"][0]["nodeName"], "node-b");
    EXPECT_EQ(got["endpoints"][0]["zone"], "z9");
    EXPECT_EQ(got["endpoints"][0]["deprecatedTopology"], json({{"rack", "r1"}}));
    EXPECT_FALSE(got["endpoints"][0].contains("topology"));
    EXPECT_EQ(got["endpoints"][1]["conditions"]["serving"], true);
    for (const auto& st : src->status()) {
        if (st.resource == "endpointslices") {
            EXPECT_EQ(st.path, kBetaSlices);
        }
    }
    api.del(kBetaSlices, "default/web-x1");  // watched on v1beta1 too
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.endpoint_slices.empty(); }));
}

TEST_F(KubeSourceTest, SkipsHeadlessAndOtherProxiesServices) {
    api.put(kSvcs, service("default", "web", "10.96.0.10"));
    api.put(kSvcs, service("default", "hl", "10.96.0.11", {{"service.kubernetes.io/headless", ""}}));
    api.put(kSvcs, service("default", "other", "10.96.0.12", {{"service.kubernetes.io/service-proxy-name", "foo"}}));
    api.put(kSlices, slice("default", "web-1", "web"));
    api.put(kSlices, slice("default", "hl-1", "hl", {{"service.kubernetes.io/headless", ""}}));
    auto src = start();
    ASSERT_TRUE(
        wait_spec(*src, [](const ClusterSpec& s) { return s.services.size() == 1 && s.endpoint_slices.size() == 1; }));
    EXPECT_TRUE(has(last->services, "default/web"));
    EXPECT_TRUE(has(last->endpoint_slices, "default/web-1"));
    // Labelled later: it goes.
    api.put(kSvcs, service("default", "web", "10.96.0.10", {{"service.kubernetes.io/service-proxy-name", "foo"}}));
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return s.services.empty(); }));
    EXPECT_EQ(
        count_requests("LIST /api/v1/services rv= continue= labelSelector=!service.kubernetes.io/service-proxy-name,"
                       "!service.kubernetes.io/headless"),
        1u);
}

TEST_F(KubeSourceTest, RotatedTokenIsReadAgainOn401) {
    TempDirPath dir;
    std::string tok = dir.path + "/token";
    std::ofstream(tok) << "token-one\n";
    {
        std::lock_guard lk(api.mu);
        api.token = "token-one";
    }
    auto o = options();
    o.kube.token_file = tok;
    o.kube.token_reread = std::chrono::hours(1);  // only a 401 makes it read again
    auto src = start(o);
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec&) { return true; }));
    {
        std::lock_guard lk(api.mu);
        api.token = "token-two";
    }
    std::ofstream(tok + ".new") << "token-two\n";
    std::filesystem::rename(tok + ".new", tok);  // as kubelet swaps it
    api.kick();                                  // the re-watches get 401, read the file again and retry
    auto rewatched = [&] {
        for (const auto& r : requests())
            if (r.rfind("WATCH /api/v1/services", 0) == 0 && r.find("auth=Bearer token-two") != std::string::npos)
                return true;
        return false;
    };
    ASSERT_TRUE(eventually(rewatched));
    {
        std::lock_guard lk(api.mu);
        EXPECT_GE(api.unauthorized, 1);
    }
    api.put(kSvcs, service("default", "after", "10.96.0.30"));
    ASSERT_TRUE(wait_spec(*src, [](const ClusterSpec& s) { return has(s.services, "default/after"); }));
    for (const auto& st : src->status()) EXPECT_EQ(st.lists, 1u) << st.resource;  // no relist needed
}

TEST_F(KubeSourceTest, PatchesNetworkUnavailableFalse) {
    auto src = start();
    ASSERT_TRUE(src->set_network_available("node-a", "skiff agent is running").ok());
    std::lock_guard lk(api.mu);
    ASSERT_EQ(api.patches.size(), 1u);
    EXPECT_EQ(api.patches[0].path, "/api/v1/nodes/node-a/status");
    EXPECT_EQ(api.patches[0].content_type, "application/strategic-merge-patch+json");
    json body = json::parse(api.patches[0].body);
    const json& c = body["status"]["conditions"][0];
    EXPECT_EQ(c["type"], "NetworkUnavailable");
    EXPECT_EQ(c["status"], "False");
    EXPECT_EQ(c["reason"], "SkiffIsUp");
    EXPECT_EQ(c["message"], "skiff agent is running");
    EXPECT_TRUE(
        std::regex_match(c["lastTransitionTime"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
}

TEST(KubeSourceDownTest, ServerDownAtStartThenRecovers) {
    int port = free_port();
    ASSERT_GT(port, 0);
    KubeSourceOptions o;
    o.kube.server = "http://127.0.0.1:" + std::to_string(port);
    o.backoff_initial = 10ms;
    o.backoff_max = 50ms;
    auto made = make_kubernetes_source(o);
    ASSERT_TRUE(made.ok());
    auto& src = **made;
    std::string err;
    ASSERT_TRUE(eventually([&] {
        auto r = src.poll();
        if (!r.ok()) err = r.error().message;
        return !r.ok();
    }));
    EXPECT_NE(err.find("not listed yet"), std::string::npos) << err;
    FakeApi api(port);
    ASSERT_TRUE(api.up());
    api.put(kNodes, node("node-a", "192.168.1.1", "10.244.0.0/24"));
    std::optional<ClusterSpec> spec;
    ASSERT_TRUE(eventually([&] {
        auto r = src.poll();
        if (r.ok() && *r) spec = std::move(**r);
        return spec.has_value();
    }));
    EXPECT_EQ(spec->nodes.size(), 1u);
    bool remembered = false;  // the failure stays visible to describe()/health
    for (const auto& st : src.status()) {
        EXPECT_TRUE(st.listed);
        EXPECT_FALSE(st.failing);
        remembered |= !st.last_error.empty();
    }
    EXPECT_TRUE(remembered);
}

TEST(KubeSourceOptionsTest, Rejected) {
    KubeSourceOptions o;
    o.kube.server = "10.0.0.1:6443";
    EXPECT_FALSE(make_kubernetes_source(o).ok());
    o.kube.server = "https://10.0.0.1:6443";
    o.page_limit = 0;
    EXPECT_FALSE(make_kubernetes_source(o).ok());
}

}  // namespace
}  // namespace skiff::agent
