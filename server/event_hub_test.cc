#include "server/event_hub.h"

#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(EventHubTest, NotifiesWatchersOfTheirJobUntilClosed) {
  EventHub hub;
  int a = 0, b = 0, closed = 0;
  const int64_t ia =
      hub.Subscribe("job-a", [&](bool c) { c ? ++closed : ++a; });
  hub.Subscribe("job-b", [&](bool c) { c ? ++closed : ++b; });
  hub.Publish("job-a");
  hub.Publish("job-a");
  hub.Publish("job-c");
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 0);
  hub.Unsubscribe(ia);
  hub.Publish("job-a");
  EXPECT_EQ(a, 2);
  EXPECT_EQ(hub.watchers(), 1u);
  hub.CloseAll();
  EXPECT_EQ(closed, 1);
  EXPECT_EQ(hub.watchers(), 0u);
  // After closing, a new watcher is told at once.
  hub.Subscribe("job-a", [&](bool c) { c ? ++closed : ++a; });
  EXPECT_EQ(closed, 2);
}

TEST(EventHubTest, CallbacksMayUnsubscribeThemselves) {
  EventHub hub;
  int64_t id = 0;
  int calls = 0;
  id = hub.Subscribe("j", [&](bool) {
    ++calls;
    hub.Unsubscribe(id);
  });
  hub.Publish("j");
  hub.Publish("j");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace quantd
