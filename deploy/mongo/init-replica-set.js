// Health check of the mongo container: initiate the single-node replica set
// on first run (transactions need one), then report whether it is primary.
try {
  rs.status();
} catch (e) {
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongo:27017" }] });
}
if (!db.hello().isWritablePrimary) { quit(1); }
