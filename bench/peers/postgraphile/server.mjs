// PostGraphile 5 (Grafast) over the gateway's PostgreSQL tables, as bench/run.py starts it:
//   DATABASE_URL=postgres://... PORT=8893 node server.mjs
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const port = Number(process.env.PORT || 8893);
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["public"] })],
  grafserv: { port, graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: { explain: false },
  // Order children by any column (position, created_at), as the gateway does; by default only indexed ones.
  disablePlugins: ["PgIndexBehaviorsPlugin"],
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (error) => { console.error(error); process.exit(1); });
await serv.addTo(server);
server.listen(port, "127.0.0.1", () => console.error(`postgraphile on ${port}`));
