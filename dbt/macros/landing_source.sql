{#-
  Every landing dataset is read with the schema its source declares: exactly the declared columns, cast to their
  data_type, a column a file lacks reading as NULL. The Jinja twin of landing/reader.py (reader_call, reader_sql);
  tests/unit/test_reader.py checks that the two agree.
-#}

{% macro source(source_name, table_name) %}
  {%- set relation = builtins.source(source_name, table_name) -%}
  {%- if not execute or relation.external is none -%}
    {{ return(relation) }}
  {%- endif -%}
  {%- set ns = namespace(node=none) -%}
  {%- for node in graph.sources.values() -%}
    {%- if node.source_name == source_name and node.name == table_name -%}
      {%- set ns.node = node -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(relation.incorporate(external=landing_reader_sql(relation.external, ns.node.columns))) }}
{% endmacro %}


{% macro landing_quote(text) -%}
  {{ return("'" ~ text.replace("'", "''") ~ "'") }}
{%- endmacro %}


{% macro landing_ident(name) -%}
  {{ return('"' ~ name.replace('"', '""') ~ '"') }}
{%- endmacro %}


{% macro landing_reader_sql(location, columns) %}
  {%- set location = location.strip() -%}
  {%- set fn = location.split('(')[0].strip().lower() -%}
  {%- set compact = location.replace(' ', '').lower() -%}
  {%- set schema = [] -%}
  {%- for name, column in columns.items() -%}
    {%- do schema.append((name, column.data_type or 'VARCHAR')) -%}
  {%- endfor -%}
  {%- set extra = [] -%}
  {%- if fn.startswith(('read_json', 'read_ndjson')) and 'columns=' not in compact -%}
    {%- set pairs = [] -%}
    {%- for name, dtype in schema -%}
      {%- do pairs.append(landing_quote(name) ~ ': ' ~ landing_quote(dtype)) -%}
    {%- endfor -%}
    {%- do extra.append('columns={' ~ pairs | join(', ') ~ '}') -%}
  {%- endif -%}
  {%- if fn.startswith(('read_csv', 'read_parquet')) and 'union_by_name=' not in compact -%}
    {%- do extra.append('union_by_name=true') -%}
  {%- endif -%}
  {%- if fn.startswith('read_csv') and 'skip=' not in compact -%}
    {%- do extra.append('skip=0') -%}
  {%- endif -%}
  {%- set call = location -%}
  {%- if extra and location.endswith(')') -%}
    {%- set ns = namespace(tail='') -%}
    {%- for e in extra -%}
      {%- set ns.tail = ns.tail ~ ', ' ~ e -%}
    {%- endfor -%}
    {%- set call = location[:-1] ~ ns.tail ~ ')' -%}
  {%- endif -%}
  {%- set nulls = [] -%}
  {%- set casts = [] -%}
  {%- for name, dtype in schema -%}
    {%- do nulls.append('cast(null as ' ~ dtype ~ ') as ' ~ landing_ident(name)) -%}
    {%- do casts.append('cast(' ~ landing_ident(name) ~ ' as ' ~ dtype ~ ') as ' ~ landing_ident(name)) -%}
  {%- endfor -%}
  {%- if 'filename=true' in compact -%}
    {%- do casts.append('filename') -%}
  {%- endif -%}
  {{ return('(select ' ~ casts | join(', ') ~ ' from (select ' ~ nulls | join(', ') ~ ' where false union all by name select * from ' ~ call ~ '))') }}
{% endmacro %}
