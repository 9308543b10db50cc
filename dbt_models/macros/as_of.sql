{#- The instant "now" means for windows, staleness and trends: var('as_of') when set
    (tests pin it), otherwise the run's current time in UTC. -#}
{% macro as_of() -%}
    {%- if var('as_of', '') | string | trim -%}
        cast('{{ var("as_of") }}' as timestamp)
    {%- else -%}
        cast(timezone('UTC', current_timestamp) as timestamp)
    {%- endif -%}
{%- endmacro %}
