with

source as (

    select * from {{ source('dummyjson', 'users') }}

),

renamed as (

    select
        cast(id as integer) as user_id,
        firstName as first_name,
        lastName as last_name,
        email,
        username,
        filename as source_file
    from source

),

final as (

    -- every export is a full snapshot: keep each user from the newest file
    select * from renamed
    qualify row_number() over (partition by user_id order by source_file desc) = 1

)

select * from final
