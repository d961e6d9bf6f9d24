// A fake Kubernetes API server for unit tests (cpp-httplib on 127.0.0.1):
// collections of objects, paged LISTs, chunked watch streams from an event
// log, and switches for the failures a real server produces (410s, 404s,
// 401s). Used by k8s_source_test.cc and kube_client_test.cc.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "eventually.h"
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/k8s_source.h"

namespace skiff::agent::k8s_test {

using nlohmann::json;
using namespace std::chrono_literals;

inline const std::string kNodes = "/api/v1/nodes", kSvcs = "/api/v1/services",
                         kSlices = "/apis/discovery.k8s.io/v1/endpointslices",
                         kBetaSlices = "/apis/discovery.k8s.io/v1beta1/endpointslices";

struct TempDirPath {
    std::string path;
    TempDirPath() {
        char tmpl[] = "/tmp/skiff-k8s-XXXXXX";
        path = ::mkdtemp(tmpl) ? tmpl : "/tmp";
    }
    ~TempDirPath() {
        std::error_code ec;
        if (path != "/tmp") std::filesystem::remove_all(path, ec);
    }
};

inline json status_body(int code, const std::string& reason, const std::string& msg) {
    return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
            {"message", msg},   {"reason", reason},   {"code", code}};
}

// A scripted API server: collections of objects, an event log that watches
// stream from, and switches for the failures a real server produces.
class FakeApi {
public:
    explicit FakeApi(int port = 0) {
        svr_.Get(".*", [this](const httplib::Request& q, httplib::Response& r) { get(q, r); });
        svr_.Patch(".*", [this](const httplib::Request& q, httplib::Response& r) {
            if (!authorized(q, r)) return;
            std::lock_guard lk(mu);
            patches.push_back({q.path, q.get_header_value("Content-Type"), q.body});
            r.set_content("{}", "application/json");
        });
        port_ = port ? (svr_.bind_to_port("127.0.0.1", port) ? port : -1) : svr_.bind_to_any_port("127.0.0.1");
        if (port_ > 0) th_ = std::thread([this] { svr_.listen_after_bind(); });
    }
    ~FakeApi() {
        {
            std::lock_guard lk(mu);
            stopping_ = true;
        }
        cv_.notify_all();
        svr_.stop();
        if (th_.joinable()) th_.join();
    }
    bool up() const { return port_ > 0; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    // ADDED or MODIFIED, with a new resourceVersion.
    void put(const std::string& coll, json obj) {
        std::lock_guard lk(mu);
        obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
        auto& objs = colls_[coll];
        std::string key = ObjectSet::key_of(obj);
        log_.push_back({rv_, coll, {{"type", objs.count(key) ? "MODIFIED" : "ADDED"}, {"object", obj}}});
        objs[key] = std::move(obj);
        cv_.notify_all();
    }
    void del(const std::string& coll, const std::string& key, bool tell_watchers = true) {
        std::lock_guard lk(mu);
        json obj = colls_[coll].at(key);
        colls_[coll].erase(key);
        obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
        if (tell_watchers) log_.push_back({rv_, coll, {{"type", "DELETED"}, {"object", obj}}});
        cv_.notify_all();
    }
    void bookmark(const std::string& coll) {
        std::lock_guard lk(mu);
        ++rv_;
        log_.push_back(
            {rv_,
             coll,
             {{"type", "BOOKMARK"}, {"object", {{"metadata", {{"resourceVersion", std::to_string(rv_)}}}}}}});
        cv_.notify_all();
    }
    // The next event of a watch on coll (open now or next) is this ERROR.
    void send_error(const std::string& coll, int code) {
        std::lock_guard lk(mu);
        pending_error_[coll] = {{"type", "ERROR"}, {"object", status_body(code, "Boom", "scripted error")}};
        cv_.notify_all();
    }
    // Forget history up to now (watches from older versions get 410) and
    // end every watch stream.
    void compact_and_kick() {
        std::lock_guard lk(mu);
        compacted_ = rv_;
        ++kick_;
        cv_.notify_all();
    }
    void kick() {
        std::lock_guard lk(mu);
        ++kick_;
        cv_.notify_all();
    }
    int64_t rv() {
        std::lock_guard lk(mu);
        return rv_;
    }

    struct Patch {
        std::string path, content_type, body;
    };
    std::mutex mu;
    // Switches and records, under mu.
    std::string token;                // the bearer token required ("" : any)
    bool watch_http_410 = false;      // too-old versions as HTTP 410 (else an ERROR event)
    int expire_continue = 0;          // this many continue requests get 410
    std::set<std::string> not_found;  // collections answering 404
    std::vector<std::string> requests, auth_seen;
    std::vector<Patch> patches;
    int unauthorized = 0;

private:
    struct Event {
        int64_t rv;
        std::string coll;
        json ev;
    };

    bool authorized(const httplib::Request& q, httplib::Response& r) {
        std::lock_guard lk(mu);
        std::string auth = q.get_header_value("Authorization");
        auth_seen.push_back(auth);
        if (token.empty() || auth == "Bearer " + token) return true;
        ++unauthorized;
        r.status = 401;
        r.set_content(status_body(401, "Unauthorized", "Unauthorized").dump(), "application/json");
        return false;
    }

    void get(const httplib::Request& q, httplib::Response& r) {
        bool watch = q.get_param_value("watch") == "1";
        {
            std::lock_guard lk(mu);
            requests.push_back((watch ? "WATCH " : "LIST ") + q.path + " rv=" + q.get_param_value("resourceVersion") +
                               " continue=" + q.get_param_value("continue") + " labelSelector=" +
                               q.get_param_value("labelSelector") + " auth=" + q.get_header_value("Authorization"));
        }
        if (!authorized(q, r)) return;
        std::unique_lock lk(mu);
        auto fail = [&](int code, const std::string& reason) {
            r.status = code;
            r.set_content(status_body(code, reason, reason).dump(), "application/json");
        };
        if (not_found.count(q.path)) return fail(404, "NotFound");
        if (!watch) {  // LIST, paged; continue tokens are "<rv>:<offset>"
            size_t limit = q.has_param("limit") ? std::stoul(q.get_param_value("limit")) : 1000000;
            std::string cont = q.get_param_value("continue");
            size_t offset = 0;
            int64_t snap = rv_;
            if (!cont.empty()) {
                if (expire_continue > 0) return --expire_continue, fail(410, "Expired");
                snap = std::stoll(cont.substr(0, cont.find(':')));
                offset = std::stoul(cont.substr(cont.find(':') + 1));
            }
            json items = json::array();
            const auto& objs = colls_[q.path];
            auto it = objs.begin();
            std::advance(it, std::min(offset, objs.size()));
            for (size_t n = 0; it != objs.end() && n < limit; ++it, ++n) {
                json item = it->second;
                item.erase("kind");  // as a real server: items carry neither
                item.erase("apiVersion");
                items.push_back(std::move(item));
            }
            json meta = {{"resourceVersion", std::to_string(snap)}};
            if (offset + limit < objs.size())
                meta["continue"] = std::to_string(snap) + ":" + std::to_string(offset + limit);
            r.set_content(json{{"kind", "List"}, {"apiVersion", "v1"}, {"metadata", meta}, {"items", items}}.dump(),
                          "application/json");
            return;
        }
        int64_t from = std::stoll(q.get_param_value("resourceVersion"));
        if (from < compacted_) {
            if (watch_http_410) return fail(410, "Expired");
            r.set_content(
                json{{"type", "ERROR"}, {"object", status_body(410, "Expired", "too old resource version")}}.dump() +
                    "\n",
                "application/json");
            return;
        }
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::seconds(std::stoll(q.get_param_value("timeoutSeconds")));
        size_t next = log_.size();
        for (size_t i = 0; i < log_.size(); ++i)
            if (log_[i].rv > from) next = std::min(next, i);
        uint64_t kick = kick_;
        std::string coll = q.path;
        r.set_chunked_content_provider(
            "application/json", [this, next, kick, coll, deadline](size_t, httplib::DataSink& sink) mutable {
                std::string out;
                bool end = false;
                {
                    std::unique_lock lk(mu);
                    cv_.wait_for(lk, 50ms);
                    for (; next < log_.size(); ++next)
                        if (log_[next].coll == coll) out += log_[next].ev.dump() + "\n";
                    end = stopping_ || kick_ != kick || std::chrono::steady_clock::now() > deadline;
                    if (auto e = pending_error_.find(coll); e != pending_error_.end()) {
                        out += e->second.dump() + "\n";
                        pending_error_.erase(e);
                        end = true;
                    }
                }
                if (!out.empty() && !sink.write(out.data(), out.size())) return false;
                if (end) sink.done();
                return true;
            });
    }

    httplib::Server svr_;
    std::thread th_;
    int port_ = -1;
    std::condition_variable cv_;
    std::map<std::string, std::map<std::string, json>> colls_;  // path -> key -> object
    std::vector<Event> log_;
    std::map<std::string, json> pending_error_;  // per collection
    int64_t rv_ = 100, compacted_ = 0;
    uint64_t kick_ = 0;
    bool stopping_ = false;
};

using skiff_test::eventually;

inline int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        a.sin_port = 0;
    ::close(fd);
    return ntohs(a.sin_port);
}

}  // namespace skiff::agent::k8s_test
