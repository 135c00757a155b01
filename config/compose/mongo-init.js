// Seeds the compose stack's MongoDB (run once by the mongo image on an empty data volume).
// A read-only user for dbmcp, and a small `app` database: users, orders, events.
const app = db.getSiblingDB("app");
app.createUser({user: "dbmcp_ro", pwd: process.env.MONGO_READER_PASSWORD || "dbmcp-reader", roles: [{role: "read", db: "app"}]});
const countries = ["DE", "FR", "ES", "IT", "PL"];
const users = [];
for (let i = 1; i <= 200; i++) {
  users.push({_id: i, email: `user${i}@example.com`, country: countries[i % 5], signed_up: new Date(Date.UTC(2025, i % 12, 1 + (i % 28))),
              tags: i % 3 === 0 ? ["vip"] : [], address: {city: ["Berlin", "Lyon", "Madrid", "Milan", "Warsaw"][i % 5], zip: String(10000 + i)}});
}
app.users.insertMany(users);
const orders = [];
for (let i = 1; i <= 2000; i++) {
  orders.push({user_id: 1 + (i * 7) % 200, status: ["new", "paid", "shipped", "cancelled"][i % 4],
               total: NumberDecimal(((i * 37) % 50000 / 100).toFixed(2)), at: new Date(Date.UTC(2025, i % 12, 1 + (i % 28), i % 24)),
               items: [{sku: `SKU-${i % 300}`, qty: 1 + (i % 3)}]});
}
app.orders.insertMany(orders);
app.orders.createIndex({user_id: 1});
app.orders.createIndex({status: 1, at: -1});
app.createCollection("sessions");
app.sessions.insertOne({user_id: 1, token: "hidden-by-the-config"});
