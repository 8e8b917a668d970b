/**
 * PostgreSQL built-in type OIDs and names that HeliosDB knows how to map, shared by the server
 * (encoding) and the client (decoding). Types not listed travel as text.
 * @packageDocumentation
 */

/** Built-in PostgreSQL type OIDs. */
export const Oid = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  money: 790,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** Array type OID -> element type OID, for the one-dimensional arrays HeliosDB decodes. */
export const arrayElementOid: Readonly<Record<number, number>> = {
  1000: Oid.bool,
  1001: Oid.bytea,
  1002: Oid.char,
  1003: Oid.name,
  1016: Oid.int8,
  1005: Oid.int2,
  1007: Oid.int4,
  1009: Oid.text,
  1028: Oid.oid,
  199: Oid.json,
  1021: Oid.float4,
  1022: Oid.float8,
  1014: Oid.bpchar,
  1015: Oid.varchar,
  1182: Oid.date,
  1183: Oid.time,
  1115: Oid.timestamp,
  1185: Oid.timestamptz,
  1187: Oid.interval,
  1270: Oid.timetz,
  1231: Oid.numeric,
  2951: Oid.uuid,
  3807: Oid.jsonb,
};

const names: Record<number, string> = {};
for (const [name, oid] of Object.entries(Oid)) names[oid] = name;
for (const [arrayOid, elementOid] of Object.entries(arrayElementOid)) {
  names[Number(arrayOid)] = `_${names[elementOid]}`;
}

/** The PostgreSQL type name (`pg_type.typname`) of a built-in OID, or undefined. */
export function builtinTypeName(oid: number): string | undefined {
  return names[oid];
}
