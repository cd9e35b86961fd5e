// Health check of the mongo container: as the root user (its password is a compose
// secret), initiate the single-node replica set on first run (transactions need one),
// then report whether it is primary.
const fs = require("fs");
const password = fs.readFileSync("/run/secrets/mongo-root-password", "utf8").trim();
db.getSiblingDB("admin").auth(process.env.MONGO_INITDB_ROOT_USERNAME || "root", password);
try {
  rs.status();
} catch (e) {
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongo:27017" }] });
}
if (!db.hello().isWritablePrimary) { quit(1); }
