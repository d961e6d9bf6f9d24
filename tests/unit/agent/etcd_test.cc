// The etcd v3 JSON-gateway client (userspace/agent/etcd.cc) against a fake
// gateway: key ranges, puts with leases, create-if-absent, leases, several
// endpoints with dead ones among them, and the watch's change flag.
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "eventually.h"
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/etcd.h"
#include "common/fd.h"

namespace skiff::agent {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

TEST(EtcdTest, PrefixRangeEnd) {
    EXPECT_EQ(prefix_range_end("/skiff/nodes/"), "/skiff/nodes0");
    EXPECT_EQ(prefix_range_end("a"), "b");
    EXPECT_EQ(prefix_range_end("a\xff"), "b");
    EXPECT_EQ(prefix_range_end("\xff\xff"), std::string(1, '\0'));  // the whole keyspace
    EXPECT_EQ(prefix_range_end(""), std::string(1, '\0'));
}

TEST(EtcdTest, ParseEndpointUrl) {
    auto e = parse_endpoint_url("http://10.0.0.1:2379");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->host, "10.0.0.1");
    EXPECT_EQ(e->port, 2379);
    e = parse_endpoint_url("http://etcd.local:12379/");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->host, "etcd.local");
    EXPECT_EQ(e->port, 12379);
    e = parse_endpoint_url("10.0.0.2");
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->host, "10.0.0.2");
    EXPECT_EQ(e->port, 2379);
    EXPECT_FALSE(parse_endpoint_url("https://10.0.0.1:2379").ok());
    EXPECT_FALSE(parse_endpoint_url("http://10.0.0.1:0").ok());
    EXPECT_FALSE(parse_endpoint_url("http://10.0.0.1:70000").ok());
    EXPECT_FALSE(parse_endpoint_url("http://:2379").ok());
}

std::vector<std::string> split(const std::vector<std::string>& chunks) {
    JsonObjectStream s;
    std::vector<std::string> out;
    for (const auto& c : chunks)
        EXPECT_TRUE(s.feed(c, [&](std::string_view o) {
            out.emplace_back(o);
            return true;
        }));
    return out;
}

TEST(EtcdTest, JsonObjectStreamSplitsLinesAndConcatenations) {
    const std::string a = R"({"result":{"created":true}})", b = R"({"result":{"events":[{"kv":{"key":"a2V5"}}]}})";
    EXPECT_EQ(split({a + "\n" + b + "\n"}), (std::vector<std::string>{a, b}));
    EXPECT_EQ(split({a + b}), (std::vector<std::string>{a, b}));
    EXPECT_EQ(split({"\r\n ", a, "\n"}), (std::vector<std::string>{a}));
    // Cut anywhere.
    const std::string both = a + "\r\n" + b;
    for (size_t cut = 0; cut <= both.size(); ++cut)
        EXPECT_EQ(split({both.substr(0, cut), both.substr(cut)}), (std::vector<std::string>{a, b + ""})) << cut;
    // Braces and quotes inside strings do not count.
    const std::string tricky = R"({"error":{"message":"bad } { \" ] [ \\"}})";
    EXPECT_EQ(split({tricky, a}), (std::vector<std::string>{tricky, a}));
    EXPECT_TRUE(json::parse(tricky, nullptr, false).is_object());
    // The callback ends the stream.
    JsonObjectStream s;
    int n = 0;
    EXPECT_FALSE(s.feed(a + a + a, [&](std::string_view) { return ++n < 2; }));
    EXPECT_EQ(n, 2);
}

// A fake v3 JSON gateway: a key space, leases, and watch streams that send
// their responses back to back (no newlines) as soon as a key changes.
class FakeEtcd {
public:
    FakeEtcd() {
        svr_.Post("/v3/kv/range", [this](const httplib::Request& q, httplib::Response& r) {
            json in = json::parse(q.body);
            std::lock_guard lk(mu);
            calls.push_back("range");
            std::string from = b64d(in["key"]), to = b64d(in["range_end"]);
            json kvs = json::array();
            for (const auto& [k, v] : kv_)
                if (k >= from && (to == std::string(1, '\0') || k < to))
                    kvs.push_back({{"key", base64_encode(k)}, {"value", base64_encode(v.value)}});
            json out = {{"header", {{"revision", "7"}}}, {"count", std::to_string(kvs.size())}};
            if (!kvs.empty()) out["kvs"] = kvs;  // as the gateway: empty fields are left out
            reply(r, out);
        });
        svr_.Post("/v3/kv/put", [this](const httplib::Request& q, httplib::Response& r) {
            json in = json::parse(q.body);
            std::lock_guard lk(mu);
            calls.push_back("put");
            put_locked(b64d(in["key"]), b64d(in["value"]), in.value("lease", ""));
            reply(r, {{"header", {{"revision", "8"}}}});
        });
        svr_.Post("/v3/kv/txn", [this](const httplib::Request& q, httplib::Response& r) {
            json in = json::parse(q.body);
            std::lock_guard lk(mu);
            calls.push_back("txn");
            const json& cmp = in["compare"][0];
            bool ok = cmp["target"] == "CREATE" && cmp["createRevision"] == "0" && !kv_.count(b64d(cmp["key"]));
            if (ok) {
                const json& p = in["success"][0]["requestPut"];
                put_locked(b64d(p["key"]), b64d(p["value"]), "");
            }
            json out = {{"header", {{"revision", "9"}}}};
            if (ok) out["succeeded"] = true;  // false is left out
            reply(r, out);
        });
        svr_.Post("/v3/lease/grant", [this](const httplib::Request& q, httplib::Response& r) {
            json in = json::parse(q.body);
            std::lock_guard lk(mu);
            calls.push_back("grant");
            std::string id = std::to_string(++lease_seq_);
            leases[id] = std::stol(in["TTL"].get<std::string>());
            reply(r, {{"ID", id}, {"TTL", in["TTL"]}});
        });
        svr_.Post("/v3/lease/keepalive", [this](const httplib::Request& q, httplib::Response& r) {
            json in = json::parse(q.body);
            std::lock_guard lk(mu);
            calls.push_back("keepalive");
            std::string id = in["ID"];
            json res = {{"ID", id}};
            if (leases.count(id)) res["TTL"] = std::to_string(leases[id]);
            reply(r, {{"result", res}});
        });
        svr_.Post("/v3/watch", [this](const httplib::Request& q, httplib::Response& r) {
            json in = json::parse(q.body);
            std::unique_lock lk(mu);
            calls.push_back("watch");
            ++watches;
            std::string from = b64d(in["create_request"]["key"]), to = b64d(in["create_request"]["range_end"]);
            size_t seen = log_.size();
            uint64_t kick = kick_;
            lk.unlock();
            r.set_chunked_content_provider("application/json", [this, from, to, seen, kick, created = false](
                                                                   size_t, httplib::DataSink& sink) mutable {
                std::string out;
                bool end = false;
                if (!created) {
                    created = true;
                    out = json{{"result", {{"header", {{"revision", "7"}}}, {"created", true}}}}.dump();
                } else {
                    std::unique_lock lk(mu);
                    cv_.wait_for(lk, 50ms);
                    json events = json::array();
                    for (; seen < log_.size(); ++seen)
                        if (log_[seen] >= from && log_[seen] < to)
                            events.push_back({{"kv", {{"key", base64_encode(log_[seen])}}}});
                    if (!events.empty())
                        out = json{{"result", {{"header", {{"revision", "8"}}}, {"events", events}}}}.dump();
                    end = stopping_ || kick_ != kick;
                }
                if (!out.empty() && !sink.write(out.data(), out.size())) return false;
                if (end) sink.done();
                return true;
            });
        });
        port_ = svr_.bind_to_any_port("127.0.0.1");
        th_ = std::thread([this] { svr_.listen_after_bind(); });
        while (!svr_.is_running()) std::this_thread::sleep_for(1ms);  // stop() before listen would be lost
    }
    ~FakeEtcd() {
        {
            std::lock_guard lk(mu);
            stopping_ = true;
        }
        cv_.notify_all();
        svr_.stop();
        if (th_.joinable()) th_.join();
    }
    Endpoint endpoint() const { return {"127.0.0.1", port_}; }
    // A change made by someone else (seen by watches).
    void put(const std::string& k, const std::string& v) {
        std::lock_guard lk(mu);
        put_locked(k, v, "");
    }
    void kick() {  // ends every watch stream
        std::lock_guard lk(mu);
        ++kick_;
        cv_.notify_all();
    }
    std::string lease_of(const std::string& k) {
        std::lock_guard lk(mu);
        return kv_.count(k) ? kv_[k].lease : "?";
    }
    int watch_count() {
        std::lock_guard lk(mu);
        return watches;
    }

    std::mutex mu;
    std::vector<std::string> calls;
    std::map<std::string, long> leases;  // id -> TTL
    int watches = 0;

private:
    struct Value {
        std::string value, lease;
    };
    static std::string b64d(const json& j) { return base64_decode(j.get<std::string>()).value(); }
    static void reply(httplib::Response& r, const json& j) { r.set_content(j.dump(), "application/json"); }
    void put_locked(const std::string& k, const std::string& v, const std::string& lease) {
        kv_[k] = {v, lease};
        log_.push_back(k);
        cv_.notify_all();
    }

    httplib::Server svr_;
    std::thread th_;
    int port_ = -1;
    std::condition_variable cv_;
    std::map<std::string, Value> kv_;
    std::vector<std::string> log_;  // keys, in the order they changed
    int lease_seq_ = 7000;
    uint64_t kick_ = 0;
    bool stopping_ = false;
};

using skiff_test::eventually;

TEST(EtcdClientTest, PutRangeCreateAndLeases) {
    FakeEtcd etcd;
    EtcdClient c({etcd.endpoint()});
    EXPECT_TRUE(c.range_prefix("/skiff/nodes/").value().empty());
    auto lease = c.grant_lease(5);
    ASSERT_TRUE(lease.ok()) << lease.error().message;
    EXPECT_EQ(*lease, "7001");
    ASSERT_TRUE(c.put("/skiff/nodes/n1", R"({"ip":"10.0.0.1"})", *lease).ok());
    ASSERT_TRUE(c.put("/skiff/nodes/n2", std::string("bin\0\xff", 5)).ok());
    ASSERT_TRUE(c.put("/skiff/nodesX", "not under the prefix").ok());
    EXPECT_EQ(etcd.lease_of("/skiff/nodes/n1"), "7001");
    EXPECT_EQ(etcd.lease_of("/skiff/nodes/n2"), "");
    auto kvs = c.range_prefix("/skiff/nodes/");
    ASSERT_TRUE(kvs.ok()) << kvs.error().message;
    EXPECT_EQ(*kvs,
              (std::vector<std::pair<std::string, std::string>>{{"/skiff/nodes/n1", R"({"ip":"10.0.0.1"})"},
                                                                {"/skiff/nodes/n2", std::string("bin\0\xff", 5)}}));
    EXPECT_EQ(c.create("/skiff/podcidrs/10.244.1.0-24", "n1").value(), true);
    EXPECT_EQ(c.create("/skiff/podcidrs/10.244.1.0-24", "n2").value(), false);
    EXPECT_EQ(c.range_prefix("/skiff/podcidrs/").value().at(0).second, "n1");
    EXPECT_EQ(c.keepalive(*lease).value(), 5);
    {
        std::lock_guard lk(etcd.mu);
        etcd.leases.clear();  // expired
    }
    EXPECT_EQ(c.keepalive(*lease).value(), 0);
}

// Listens (so connects succeed through the backlog) but never answers.
struct SilentServer {
    UniqueFd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    int port = 0;
    SilentServer() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(a);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) == 0 && ::listen(fd.get(), 8) == 0 &&
            ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0)
            port = ntohs(a.sin_port);
    }
};

int closed_port() {
    SilentServer s;  // bound, then closed again: refused
    return s.port;
}

TEST(EtcdClientTest, TriesEndpointsInOrderWithinBounds) {
    FakeEtcd etcd;
    SilentServer hung;
    ASSERT_NE(hung.port, 0);
    EtcdTimeouts t;
    t.connect = 1s;
    t.stall = 1s;
    t.request = 5s;
    EtcdClient c({{"127.0.0.1", closed_port()}, {"127.0.0.1", hung.port}, etcd.endpoint()}, t);
    auto t0 = std::chrono::steady_clock::now();
    auto r = c.put("/k", "v");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
    {
        std::lock_guard lk(etcd.mu);
        EXPECT_EQ(etcd.calls, (std::vector<std::string>{"put"}));
    }
    // All dead: the last error, in bounded time.
    EtcdClient dead({{"127.0.0.1", closed_port()}, {"127.0.0.1", hung.port}}, t);
    t0 = std::chrono::steady_clock::now();
    auto d = dead.range_prefix("/");
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, ETIMEDOUT) << d.error().message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST(EtcdClientTest, HttpErrorsCarryTheMessage) {
    httplib::Server svr;
    svr.Post(".*", [](const httplib::Request&, httplib::Response& r) {
        r.status = 400;
        r.set_content(R"({"error":"etcdserver: requested lease not found","code":5})", "application/json");
    });
    int port = svr.bind_to_any_port("127.0.0.1");
    std::thread th([&] { svr.listen_after_bind(); });
    while (!svr.is_running()) std::this_thread::sleep_for(1ms);
    EtcdClient c({{"127.0.0.1", port}});
    auto r = c.keepalive("1");
    svr.stop();
    th.join();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("HTTP 400 etcdserver: requested lease not found"), std::string::npos)
        << r.error().message;
}

TEST(EtcdWatchTest, RaisesTheFlagOnEventsAndReconnects) {
    FakeEtcd etcd;
    EtcdTimeouts t;
    t.connect = 1s;
    auto w = std::make_unique<EtcdWatch>(std::vector<Endpoint>{etcd.endpoint()}, "/skiff/", t);
    EXPECT_TRUE(w->take_changed());  // nothing read yet
    ASSERT_TRUE(eventually([&] { return etcd.watch_count() == 1; }));
    // The "created" response raises it once more: re-read after connecting.
    ASSERT_TRUE(eventually([&] { return w->take_changed(); }));
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(w->take_changed());
    etcd.put("/other/x", "1");  // outside the prefix
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(w->take_changed());
    etcd.put("/skiff/nodes/n1", "1");
    EXPECT_TRUE(eventually([&] { return w->take_changed(); }));
    etcd.put("/skiff/nodes/n2", "1");
    EXPECT_TRUE(eventually([&] { return w->take_changed(); }));
    // The stream ends: the flag goes up and the watch comes back.
    etcd.kick();
    EXPECT_TRUE(eventually([&] { return w->take_changed(); }));
    ASSERT_TRUE(eventually([&] { return etcd.watch_count() == 2; }));
    etcd.put("/skiff/nodes/n3", "1");
    EXPECT_TRUE(eventually([&] { return w->take_changed(); }));
    // Stopping ends the stream at once.
    auto t0 = std::chrono::steady_clock::now();
    w.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(EtcdWatchTest, MovesToTheNextEndpoint) {
    FakeEtcd etcd;
    EtcdTimeouts t;
    t.connect = 1s;
    EtcdWatch w({{"127.0.0.1", closed_port()}, etcd.endpoint()}, "/skiff/", t);
    ASSERT_TRUE(eventually([&] { return etcd.watch_count() == 1; }));
    std::this_thread::sleep_for(200ms);
    (void)w.take_changed();
    etcd.put("/skiff/a", "1");
    EXPECT_TRUE(eventually([&] { return w.take_changed(); }));
}

}  // namespace
}  // namespace skiff::agent
