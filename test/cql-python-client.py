"""The DataStax Python driver (Debian's python3-cassandra) against HeliosDB's CQL listener.

Usage: cql-python-client.py PORT KEYSPACE. Prints one JSON object with what it saw.
"""
import json
import sys

from cassandra.cluster import Cluster, ExecutionProfile, EXEC_PROFILE_DEFAULT
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import BatchStatement, SimpleStatement
from cassandra import InvalidRequest

port, ks = int(sys.argv[1]), sys.argv[2]
profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"))
cluster = Cluster(["127.0.0.1"], port=port, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
session = cluster.connect()
out = {"protocol": cluster.protocol_version}
session.execute("CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}" % ks)
session.execute("CREATE TABLE %s.t (k int, c int, v text, PRIMARY KEY (k, c))" % ks)
ins = session.prepare("INSERT INTO %s.t (k, c, v) VALUES (?, ?, ?)" % ks)
for i in range(250):
    session.execute(ins, (1, i, "v%d" % i))
rows = list(session.execute(SimpleStatement("SELECT * FROM %s.t WHERE k = 1" % ks, fetch_size=100)))
out["rows"] = len(rows)
out["first"] = [rows[0].k, rows[0].c, rows[0].v]
r = session.execute("UPDATE %s.t SET v = 'x' WHERE k = 1 AND c = 0 IF v = 'nope'" % ks)
out["applied_wrong"] = r.was_applied
r = session.execute("UPDATE %s.t SET v = 'x' WHERE k = 1 AND c = 0 IF v = 'v0'" % ks)
out["applied_right"] = r.was_applied
b = BatchStatement()
b.add(ins, (2, 1, "a"))
b.add(ins, (2, 2, "b"))
session.execute(b)
out["batch_count"] = session.execute("SELECT count(*) FROM %s.t WHERE k = 2" % ks).one()[0]
session.execute("CREATE TABLE %s.hits (p text PRIMARY KEY, n counter)" % ks)
for _ in range(3):
    session.execute("UPDATE %s.hits SET n = n + 2 WHERE p = %%s" % ks, ("home",))
out["counter"] = session.execute("SELECT n FROM %s.hits WHERE p = 'home'" % ks).one().n
cluster.refresh_schema_metadata()
out["columns"] = list(cluster.metadata.keyspaces[ks].tables["t"].columns)
out["partition_key"] = [c.name for c in cluster.metadata.keyspaces[ks].tables["t"].partition_key]
try:
    session.execute("SELECT * FROM %s.t WHERE v = 'a'" % ks)
    out["error"] = None
except InvalidRequest as e:
    out["error"] = type(e).__name__
cluster.shutdown()
print(json.dumps(out))
